import { Inject, Injectable } from '@nestjs/common';
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import { SampledWarning } from '../common/sampled-warning';
import { LOGGER } from './logger';
import { Metrics } from './metrics';

/** What is known about one request between its start and its reply. */
interface Trace {
  readonly seq: number;
  readonly startedAt: number;
  /** The metric label and log field, from a fixed set (the caller's to guarantee). */
  readonly label: string;
  admitted: boolean;
  done: boolean;
}

/** How one request ended, as the protocol sees it. */
export interface RequestOutcome {
  /** `OK`, or the error code. */
  readonly code: string;
  /** A code that only the admission check gives: before admission, it is a rejection. */
  readonly admissionCode: boolean;
  /** The level of a request's line when it was not a rejection (rejections are `warn`). */
  readonly level: 'info' | 'warn' | 'error';
  /** Fields for the log line, asked for only when a line is written. */
  readonly fields: () => Readonly<Record<string, unknown>>;
}

const TRACE = Symbol('pai.trace');
type Carrier = { [TRACE]?: Trace };

/**
 * One request's measurements: begun when it reaches the admission check and finished with its
 * reply, so every request gives exactly one metric sample and one log line (rejections are
 * sampled: the first of each window in full, then a count). The trace rides on an object the
 * caller gives, one per request (the transport's per-message context).
 *
 * The log line carries fields from a fixed list; never the payload, the MAC, a token or a key.
 */
@Injectable()
export class RequestObserver {
  private seq = 0;
  /** Makes request ids unique across restarts and instances: `<boot>-<sequence>`. */
  private readonly boot = randomBytes(3).toString('hex');
  /** By code: the first rejection of each window in full, then a count. */
  private readonly rejections = new Map<string, SampledWarning>();

  constructor(
    private readonly metrics: Metrics,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  begin(carrier: object, label: string): void {
    (carrier as Carrier)[TRACE] = {
      seq: (this.seq += 1),
      startedAt: performance.now(),
      label,
      admitted: false,
      done: false,
    };
  }

  /** Past the admission check: later errors are the handler's, not rejections. */
  admitted(carrier: object): void {
    const trace = (carrier as Carrier)[TRACE];
    if (trace) trace.admitted = true;
  }

  finish(carrier: object, outcome: RequestOutcome): void {
    const trace = (carrier as Carrier)[TRACE];
    // A reply whose signing failed reaches the filter after the interceptor: count it once.
    if (!trace || trace.done) return;
    trace.done = true;
    const { code } = outcome;
    const seconds = (performance.now() - trace.startedAt) / 1_000;
    const rejected = !trace.admitted && outcome.admissionCode;
    this.metrics.recordRequest(
      trace.label,
      code,
      seconds,
      rejected ? code : undefined,
    );

    const level = rejected ? 'warn' : outcome.level;
    if (!this.logger.isLevelEnabled(level)) return;
    const line = () => {
      this.logger[level](
        {
          reqId: `${this.boot}-${trace.seq}`,
          pattern: trace.label,
          code,
          durationMs: Math.round(seconds * 1e6) / 1e3,
          ...outcome.fields(),
        },
        rejected ? 'request rejected' : 'request',
      );
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
