/** The protocol's error codes (docs/protocol.md section 4). Stable: clients switch on them. */
export enum ErrorCode {
  BAD_REQUEST = 'BAD_REQUEST',
  UNKNOWN_KEY = 'UNKNOWN_KEY',
  MAC_INVALID = 'MAC_INVALID',
  STALE = 'STALE',
  REPLAY = 'REPLAY',
  USERNAME_TAKEN = 'USERNAME_TAKEN',
  INVALID_CREDENTIALS = 'INVALID_CREDENTIALS',
  UNAUTHENTICATED = 'UNAUTHENTICATED',
  RATE_LIMITED = 'RATE_LIMITED',
  IDEMPOTENCY_CONFLICT = 'IDEMPOTENCY_CONFLICT',
  NOT_FOUND = 'NOT_FOUND',
  NOT_SEALED = 'NOT_SEALED',
  UNAVAILABLE = 'UNAVAILABLE',
  INTERNAL = 'INTERNAL',
}

export interface FieldProblem {
  field: string;
  problem: string;
}

/** The one place where an error code becomes wire text. Exhaustive: a new code must be given one. */
export function wireMessage(code: ErrorCode): string {
  switch (code) {
    case ErrorCode.BAD_REQUEST:
      return 'the request is not valid';
    case ErrorCode.UNKNOWN_KEY:
      return 'unknown key id';
    case ErrorCode.MAC_INVALID:
      return 'message authentication failed';
    case ErrorCode.STALE:
      return 'timestamp outside the accepted window';
    case ErrorCode.REPLAY:
      return 'message already accepted';
    case ErrorCode.USERNAME_TAKEN:
      return 'username already taken';
    case ErrorCode.INVALID_CREDENTIALS:
      return 'invalid username or password';
    case ErrorCode.UNAUTHENTICATED:
      return 'session token unknown, expired or revoked';
    case ErrorCode.RATE_LIMITED:
      return 'too many failed logins, retry later';
    case ErrorCode.IDEMPOTENCY_CONFLICT:
      return 'reference already used with a different amount or description';
    case ErrorCode.NOT_FOUND:
      return 'no such transaction of this user';
    case ErrorCode.NOT_SEALED:
      return 'not sealed into the ledger yet, retry later';
    case ErrorCode.UNAVAILABLE:
      return 'service temporarily unavailable, safe to retry';
    case ErrorCode.INTERNAL:
      return 'internal error';
    default: {
      const unreachable: never = code;
      return unreachable;
    }
  }
}
