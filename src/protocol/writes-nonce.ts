import { SetMetadata } from '@nestjs/common';

export const WRITES_NONCE = 'pai:writesNonce';

/**
 * The handler records the request's nonce itself, in the database transaction that does its own
 * work (the `database` nonce record only): one commit where there would be two. It must record
 * it on every path, REPLAY included; see PendingNonce.
 */
export const WritesNonce = (): MethodDecorator =>
  SetMetadata(WRITES_NONCE, true);
