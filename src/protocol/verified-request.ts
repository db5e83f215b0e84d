import type { ArgumentsHost } from '@nestjs/common';
import type { RequestBinding } from '@pai/client/protocol/mac';

/** A request whose MAC verified (checks 1-3 passed): what its reply is bound to and signed with. */
export interface VerifiedRequest extends RequestBinding {
  readonly key: Buffer;
}

// Keyed by the transport's per-message context object, the one thing the guard, the pipes, the
// interceptor and the filter all see; it is gone with the message.
const verified = new WeakMap<object, VerifiedRequest>();

function contextOf(host: ArgumentsHost): object | undefined {
  const context = host.switchToRpc().getContext<unknown>();
  return typeof context === 'object' && context !== null ? context : undefined;
}

/** Called by the MAC guard once the request's MAC matched, before freshness and replay. */
export function markVerified(
  host: ArgumentsHost,
  request: VerifiedRequest,
): void {
  const context = contextOf(host);
  if (context) verified.set(context, request);
}

/**
 * The verified request behind this message, or undefined when its MAC was not checked or did not
 * match: a reply is signed if and only if this is set (docs/protocol.md 4).
 */
export function verifiedRequestOf(
  host: ArgumentsHost,
): VerifiedRequest | undefined {
  const context = contextOf(host);
  return context ? verified.get(context) : undefined;
}

/**
 * A verified request's nonce that the guard left for its handler to record (`@WritesNonce()`):
 * the handler writes it in the same database transaction as its own work, so that the replay
 * check costs no round trip of its own. `claimed` is set once the handler's write owns it; a
 * request refused before that (its payload, say) has its nonce recorded by the exception filter,
 * so that a copy of it is still answered REPLAY.
 */
export interface PendingNonce {
  readonly kid: string;
  readonly nonce: string;
  readonly ts: number;
  /** Until when the record keeps the pair: ts plus the freshness window. */
  readonly expiresAt: number;
  claimed: boolean;
}

const pendingNonces = new WeakMap<object, PendingNonce>();

export function deferNonce(host: ArgumentsHost, pending: PendingNonce): void {
  const context = contextOf(host);
  if (context) pendingNonces.set(context, pending);
}

/** The nonce this message's handler must record, if the guard deferred it. */
export function pendingNonceOf(
  hostOrContext: ArgumentsHost | object,
): PendingNonce | undefined {
  const context =
    'switchToRpc' in hostOrContext ? contextOf(hostOrContext) : hostOrContext;
  return context ? pendingNonces.get(context) : undefined;
}
