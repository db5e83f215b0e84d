import { ErrorCode } from '../protocol/error-code';

/** Failures that happen on the client's side of the wire. */
export enum ClientErrorCode {
  /** No reply within the timeout. */
  TIMEOUT = 'TIMEOUT',
  /** The connection could not be made or broke. */
  CONNECTION = 'CONNECTION',
  /**
   * A reply whose MAC is missing or wrong: anyone on the path can make one, so its content is not
   * trusted and the request's outcome is unknown (it may have run).
   */
  REPLY_UNVERIFIED = 'REPLY_UNVERIFIED',
}

export type PaiErrorCode = ErrorCode | ClientErrorCode;

/** Every failure of PaiClient.send: a verified error reply from the service, or a client-side one. */
export class PaiClientError extends Error {
  constructor(
    readonly code: PaiErrorCode,
    message: string,
    /** The error's extra fields (`fields`, `serverTime`, `retryAfterMs`, …) from a verified reply. */
    readonly details: Readonly<Record<string, unknown>> = {},
  ) {
    super(message);
    this.name = 'PaiClientError';
  }
}
