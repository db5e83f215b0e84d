/** Messages to a pattern with no handler are routed here, through the guard, filter and signer. */
export const UNKNOWN_PATTERN_ROUTE = 'pai.unknown-pattern';

/**
 * The handler for exactly this pattern string, or the unknown-pattern route. Nest's own lookup
 * JSON-parses the string first, so `' "system.ping"'` would reach the ping handler under a name
 * of the peer's choosing (a metrics label, a log field); the protocol matches character for
 * character (docs/protocol.md 1).
 */
export function exactRoute<H>(
  handlers: ReadonlyMap<string, H>,
  pattern: string,
): H {
  const handler = handlers.get(pattern) ?? handlers.get(UNKNOWN_PATTERN_ROUTE);
  if (!handler) throw new Error('the unknown-pattern route is not registered');
  return handler;
}
