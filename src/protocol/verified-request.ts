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
