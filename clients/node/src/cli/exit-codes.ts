import {
  ClientErrorCode,
  PaiClientError,
  type PaiErrorCode,
} from '../client/pai-client.error';
import { ErrorCode } from '../protocol/error-code';

/** Failures the command-line client finds on its own, before or without a reply. */
export enum CliErrorCode {
  /** A bug or an error nobody foresaw. */
  UNEXPECTED = 'UNEXPECTED',
  /** Bad command line: unknown command or option, missing or extra argument. */
  USAGE = 'USAGE',
  /** No saved session, or one saved for another server. */
  NOT_LOGGED_IN = 'NOT_LOGGED_IN',
  /** No usable MAC key, an unreadable CA file, a bad PAI_* variable, an unsafe session file. */
  CONFIG = 'CONFIG',
  /** No password given, or the two typed at registration differ. */
  INPUT = 'INPUT',
  /** Ctrl-C at the password prompt. */
  INTERRUPTED = 'INTERRUPTED',
}

export type CliFailureCode = PaiErrorCode | CliErrorCode;

/**
 * One stable exit code per failure, so that scripts can tell them apart; docs/cli.md lists them.
 * A `Record` over every code: a code added to the protocol or the client does not compile here
 * until it has its own exit code.
 */
export const EXIT_CODES: Readonly<Record<CliFailureCode, number>> = {
  [CliErrorCode.UNEXPECTED]: 1,
  [CliErrorCode.USAGE]: 2,
  [CliErrorCode.NOT_LOGGED_IN]: 3,
  [CliErrorCode.CONFIG]: 4,
  [CliErrorCode.INPUT]: 5,
  [ErrorCode.BAD_REQUEST]: 10,
  [ErrorCode.UNKNOWN_KEY]: 11,
  [ErrorCode.MAC_INVALID]: 12,
  [ErrorCode.STALE]: 13,
  [ErrorCode.REPLAY]: 14,
  [ErrorCode.USERNAME_TAKEN]: 20,
  [ErrorCode.INVALID_CREDENTIALS]: 21,
  [ErrorCode.UNAUTHENTICATED]: 22,
  [ErrorCode.RATE_LIMITED]: 23,
  [ErrorCode.IDEMPOTENCY_CONFLICT]: 24,
  [ErrorCode.NOT_FOUND]: 25,
  [ErrorCode.NOT_SEALED]: 26,
  [ErrorCode.UNAVAILABLE]: 30,
  [ErrorCode.INTERNAL]: 31,
  [ClientErrorCode.TIMEOUT]: 40,
  [ClientErrorCode.CONNECTION]: 41,
  [ClientErrorCode.REPLY_UNVERIFIED]: 42,
  // 128 + SIGINT, what a shell reports for a command stopped by Ctrl-C.
  [CliErrorCode.INTERRUPTED]: 130,
};

/** A failure found by the CLI itself; its message is already fit to show. */
export class CliError extends Error {
  constructor(
    readonly code: CliErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'CliError';
  }
}

/** What a message about a failed request may mention. */
export interface FailureContext {
  server: string;
  kid: string;
  timeoutMs: number;
}

function fieldProblems(details: Readonly<Record<string, unknown>>): string {
  const fields = Array.isArray(details.fields) ? details.fields : [];
  const problems = fields
    .map((item: unknown) => {
      const { field, problem } = (item ?? {}) as Record<string, unknown>;
      return typeof field === 'string' && typeof problem === 'string'
        ? // `payload.amount` is the protocol's path; on a command line it is the amount.
          `${field.replace(/^payload\./, '')} ${problem}`
        : undefined;
    })
    .filter((text): text is string => text !== undefined);
  return problems.length > 0 ? `: ${problems.join('; ')}` : '';
}

function seconds(ms: unknown): string {
  return typeof ms === 'number'
    ? `${Math.max(1, Math.ceil(ms / 1000))} s`
    : 'a while';
}

/** One line for a user, per protocol and client error code; never a token or a password. */
export function describeFailure(
  error: PaiClientError,
  context: FailureContext,
): string {
  const { details } = error;
  const code: PaiErrorCode = error.code;
  switch (code) {
    case ErrorCode.BAD_REQUEST:
      return `the service refused the request${fieldProblems(details) || ` (${error.message})`}`;
    case ErrorCode.UNKNOWN_KEY:
      return `the service does not know key id "${context.kid}"; check PAI_MAC_KEYS`;
    case ErrorCode.MAC_INVALID:
      return `the service rejected the signature: the secret of key "${context.kid}" differs from the service's; check PAI_MAC_KEYS or PAI_DATA_DIR`;
    case ErrorCode.STALE:
      return "this machine's clock is too far from the service's, even after adjusting once; check the clock";
    case ErrorCode.REPLAY:
      return 'another copy of this very request reached the service first: it ran once and its result was not seen here; check before running the command again (`pai history`, `pai me`)';
    case ErrorCode.USERNAME_TAKEN:
      return 'that username is taken (names are compared without regard to case); choose another';
    case ErrorCode.INVALID_CREDENTIALS:
      return 'wrong username or password';
    case ErrorCode.UNAUTHENTICATED:
      return 'the session has expired or was revoked; log in again with `pai login <user>`';
    case ErrorCode.RATE_LIMITED:
      return `too many failed logins for this username; try again in ${seconds(details.retryAfterMs)}`;
    case ErrorCode.IDEMPOTENCY_CONFLICT:
      return 'that reference was already used for a transaction with another amount or description; nothing was recorded';
    case ErrorCode.NOT_FOUND:
      return 'you have no transaction with that id';
    case ErrorCode.NOT_SEALED:
      return 'not sealed into the ledger yet (a transaction is sealed seconds after it is recorded); try again shortly';
    case ErrorCode.UNAVAILABLE:
      return 'the service cannot reach its database right now; it is safe to try again';
    case ErrorCode.INTERNAL:
      return `the service failed${typeof details.errorId === 'string' ? ` (error id ${details.errorId}, quote it to its operators)` : ''}`;
    case ClientErrorCode.TIMEOUT:
      return `no verified reply from ${context.server} within ${context.timeoutMs} ms; the request may still have run`;
    case ClientErrorCode.CONNECTION:
      return `cannot talk to the service at ${context.server} (${error.message.replace(/^[\w.]+ failed: /, '')}); is it running, and is TLS (--tls-ca) as it expects?`;
    case ClientErrorCode.REPLY_UNVERIFIED: {
      const claimed =
        typeof details.claimedCode === 'string'
          ? `; it claims ${details.claimedCode}`
          : '';
      // The service leaves its reply unsigned when it does not know our key id or our MAC did
      // not match its secret: these two codes only ever arrive here, unverified.
      const hint =
        details.claimedCode === ErrorCode.UNKNOWN_KEY
          ? `, so the service probably does not know key id "${context.kid}"`
          : details.claimedCode === ErrorCode.MAC_INVALID
            ? `, so our secret for key id "${context.kid}" probably differs from the service's`
            : '';
      return `the reply from ${context.server} is not signed with our key and is not trusted${claimed}${hint}; the request may or may not have run`;
    }
  }
}
