/** The protocol's error codes (PROTOCOL.md section 4). Stable: clients switch on them. */
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
  UNAVAILABLE = 'UNAVAILABLE',
  INTERNAL = 'INTERNAL',
}

export interface FieldProblem {
  field: string;
  problem: string;
}
