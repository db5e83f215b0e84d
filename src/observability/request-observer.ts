import {
  ArgumentsHost,
  ExecutionContext,
  Inject,
  Injectable,
} from '@nestjs/common';
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import { KID_PATTERN } from '../protocol/envelope';
import { ErrorCode } from '../protocol/error-code';
import { patternOf } from '../protocol/rpc-pattern';
import { UnknownPatternController } from '../protocol/unknown-pattern.controller';
import { SampledWarning } from '../common/sampled-warning';
import { LOGGER } from './logger';
import { Metrics } from './metrics';

/** What is known about one request between the guard and its reply. */
interface Trace {
  readonly seq: number;
  readonly startedAt: number;
  /**
   * The metric label and log field: the pattern, or "unknown" when no handler has it exactly, so a
   * peer can neither create series nor write text of its choosing.
   */
  readonly pattern: string;
  admitted: boolean;
  done: boolean;
}

const TRACE = Symbol('pai.trace');
type Carrier = { [TRACE]?: Trace };

/** The codes only the MAC guard gives; any of them before admission is a rejection. */
const GUARD_CODES: ReadonlySet<ErrorCode | 'OK'> = new Set([
  ErrorCode.BAD_REQUEST,
  ErrorCode.UNKNOWN_KEY,
  ErrorCode.MAC_INVALID,
  ErrorCode.STALE,
  ErrorCode.REPLAY,
]);

/**
 * One request's measurements: started by the guard, finished by the reply interceptor (success)
 * or the exception filter (every error), so every request that reaches the guard gives exactly
 * one metric sample and one log line (a guard's refusals are sampled: the first of each window in
 * full, then a count). The trace rides on Nest's per-message transport context object,
 * the one thing the guard, the interceptor and the filter all see.
 *
 * The log line carries fields from a fixed list; never the payload, the MAC, a token or a key.
 */
@Injectable()
export class RequestObserver {
  private seq = 0;
  /** Makes request ids unique across restarts and instances: `<boot>-<sequence>`. */
  private readonly boot = randomBytes(3).toString('hex');
  /** By guard code: the first rejection of each window in full, then a count. */
  private readonly rejections = new Map<string, SampledWarning>();

  constructor(
    private readonly metrics: Metrics,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  begin(context: ExecutionContext): void {
    const carrier = carrierOf(context);
    if (!carrier) return;
    carrier[TRACE] = {
      seq: (this.seq += 1),
      startedAt: performance.now(),
      pattern:
        context.getClass() === UnknownPatternController
          ? 'unknown'
          : patternOf(context),
      admitted: false,
      done: false,
    };
  }

  /** The guard let the request through: later errors are the handler's, not rejections. */
  admitted(context: ExecutionContext): void {
    const trace = carrierOf(context)?.[TRACE];
    if (trace) trace.admitted = true;
  }

  succeeded(host: ArgumentsHost): void {
    this.finish(host, 'OK', undefined);
  }

  failed(host: ArgumentsHost, code: ErrorCode, errorId: unknown): void {
    this.finish(host, code, errorId);
  }

  private finish(
    host: ArgumentsHost,
    code: ErrorCode | 'OK',
    errorId: unknown,
  ): void {
    const trace = carrierOf(host)?.[TRACE];
    // A reply whose signing failed reaches the filter after the interceptor: count it once.
    if (!trace || trace.done) return;
    trace.done = true;
    const seconds = (performance.now() - trace.startedAt) / 1_000;
    const rejected = !trace.admitted && GUARD_CODES.has(code);
    this.metrics.recordRequest(
      trace.pattern,
      code,
      seconds,
      rejected ? code : undefined,
    );

    const level =
      code === ErrorCode.INTERNAL
        ? 'error'
        : rejected ||
            code === ErrorCode.RATE_LIMITED ||
            code === ErrorCode.UNAVAILABLE
          ? 'warn'
          : 'info';
    if (!this.logger.isLevelEnabled(level)) return;
    const line = () => {
      const fields: Record<string, unknown> = {
        reqId: `${this.boot}-${trace.seq}`,
        pattern: trace.pattern,
        code,
        durationMs: Math.round(seconds * 1e6) / 1e3,
        kid: kidOf(host),
        remote: remoteOf(host),
      };
      if (typeof errorId === 'string') fields.errorId = errorId;
      this.logger[level](fields, rejected ? 'request rejected' : 'request');
    };
    // Anyone can send refusals, and as fast as the network carries them: a line each would let
    // a peer without the key fill the disk. The metrics still count every one.
    if (rejected) this.rejectionWarning(code).record(line);
    else line();
  }

  private rejectionWarning(code: string): SampledWarning {
    let warning = this.rejections.get(code);
    if (!warning) {
      warning = new SampledWarning(
        this.logger,
        (total) => `${total} request(s) rejected as ${code} since the start`,
      );
      this.rejections.set(code, warning);
    }
    return warning;
  }
}

function carrierOf(host: ArgumentsHost): Carrier | undefined {
  const context = host.switchToRpc().getContext<Carrier | null | undefined>();
  return typeof context === 'object' && context !== null ? context : undefined;
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
