import type { ArgumentsHost, ExecutionContext } from '@nestjs/common';
import type { RequestObserver } from '../observability/request-observer';
import { KID_PATTERN } from '@pai/client/config/mac-keys';
import { ErrorCode } from '@pai/client/protocol/error-code';
import { patternOf } from './rpc-pattern';
import { UnknownPatternController } from './unknown-pattern.controller';
import { pendingNonceOf } from './verified-request';

/** The codes only the MAC guard gives; any of them before admission is a rejection. */
const GUARD_CODES: ReadonlySet<string> = new Set([
  ErrorCode.BAD_REQUEST,
  ErrorCode.UNKNOWN_KEY,
  ErrorCode.MAC_INVALID,
  ErrorCode.STALE,
  ErrorCode.REPLAY,
]);

/** The per-message context object that carries the request's trace. */
function carrierOf(host: ArgumentsHost): object {
  return host.switchToRpc().getContext<object>();
}

/**
 * The request reached the guard. Its label is the pattern when a handler has it exactly, else
 * `unknown`: a peer can neither create metric series nor write log text of its choosing.
 */
export function reportStart(
  observer: RequestObserver,
  context: ExecutionContext,
): void {
  observer.begin(
    carrierOf(context),
    context.getClass() === UnknownPatternController
      ? 'unknown'
      : patternOf(context),
  );
}

export function reportAdmitted(
  observer: RequestObserver,
  context: ExecutionContext,
): void {
  observer.admitted(carrierOf(context));
}

export function reportOutcome(
  observer: RequestObserver,
  host: ArgumentsHost,
  code: ErrorCode | 'OK',
  errorId?: unknown,
): void {
  // The guard passed a deferred nonce on: the request was admitted unless it was a replay.
  if (pendingNonceOf(host) && code !== ErrorCode.REPLAY) {
    observer.admitted(carrierOf(host));
  }
  observer.finish(carrierOf(host), {
    code,
    admissionCode: GUARD_CODES.has(code),
    level:
      code === ErrorCode.INTERNAL
        ? 'error'
        : code === ErrorCode.RATE_LIMITED || code === ErrorCode.UNAVAILABLE
          ? 'warn'
          : 'info',
    fields: () => ({
      kid: kidOf(host),
      remote: remoteOf(host),
      ...(typeof errorId === 'string' ? { errorId } : {}),
    }),
  });
}

/** The envelope's kid when it has the form of one: an unchecked field could be anything. */
function kidOf(host: ArgumentsHost): string | undefined {
  const data: unknown = host.switchToRpc().getData();
  if (typeof data !== 'object' || data === null) return undefined;
  const kid = (data as { kid?: unknown }).kid;
  return typeof kid === 'string' && KID_PATTERN.test(kid) ? kid : undefined;
}

interface SocketContext {
  getSocketRef?: () => { socket?: { remoteAddress?: string } } | undefined;
}

function remoteOf(host: ArgumentsHost): string | undefined {
  const context = host.switchToRpc().getContext<SocketContext | undefined>();
  return context?.getSocketRef?.()?.socket?.remoteAddress;
}
