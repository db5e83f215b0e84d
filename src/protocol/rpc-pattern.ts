import { ArgumentsHost } from '@nestjs/common';

interface PatternContext {
  getPattern?: () => string;
  getSubject?: () => string;
}

/**
 * The pattern a message was sent under, as the transport saw it. The MAC covers this exact
 * string, so it is read from the transport context rather than from the handler's metadata.
 */
export function patternOf(host: ArgumentsHost): string {
  const context = host.switchToRpc().getContext<PatternContext | undefined>();
  if (context?.getPattern) return context.getPattern();
  if (context?.getSubject) return context.getSubject();
  throw new Error('message received on a transport without a pattern');
}
