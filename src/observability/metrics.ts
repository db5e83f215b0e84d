import { Inject, Injectable } from '@nestjs/common';
import {
  Counter,
  Gauge,
  Histogram,
  Registry,
  collectDefaultMetrics,
} from 'prom-client';
import { RecentResult } from '../common/recent-result';
import { APP_CONFIG, type AppConfig } from '../config/config';
import { withTimeout } from '../common/deadline';

const SCRAPE_READ_TIMEOUT_MS = 2_000;
/**
 * Node's process metrics are collected at most this often: reading them (CPU, memory, heap
 * spaces, handles, event-loop delay) is most of a scrape's cost, about 0.9 ms of the event loop
 * against 0.2 ms for the service's own series, and the side port is unauthenticated.
 */
export const PROCESS_METRICS_MAX_AGE_MS = 1_000;

type Labels<K extends string> = Record<K, string>;

/** What the metrics and readiness read of the protocol server (TCP or NATS), at scrape time. */
export interface TrackedServer {
  readonly load: { connections: number; inFlight: number };
  isReceiving(): boolean;
}

/**
 * The service's Prometheus metrics, in a registry of its own (not prom-client's global one, so
 * several apps in one process, as in the tests, do not collide).
 *
 * Per request: one counter increment and one histogram observation, with label objects made
 * once per pattern and code and reused; nothing at all when the side port is off, as nobody
 * could read them. Connections and components' gauges are read at scrape time only, and Node's
 * process metrics (a registry of
 * their own) at most once per PROCESS_METRICS_MAX_AGE_MS.
 */
@Injectable()
export class Metrics {
  readonly registry = new Registry();
  private readonly processRegistry = new Registry();
  private readonly processText = new RecentResult(
    () => this.processRegistry.metrics(),
    PROCESS_METRICS_MAX_AGE_MS,
  );
  private server?: TrackedServer;
  private processMetrics = false;
  private readonly enabled: boolean;

  private readonly requests = new Counter({
    name: 'pai_requests_total',
    help: 'Requests answered, by pattern ("unknown" for a pattern with no handler) and outcome code (OK or the error code)',
    labelNames: ['pattern', 'code'] as const,
    registers: [this.registry],
  });

  private readonly rejections = new Counter({
    name: 'pai_rejections_total',
    help: 'Requests the MAC guard refused before any handler ran, by reason (BAD_REQUEST envelope, UNKNOWN_KEY, MAC_INVALID, STALE, REPLAY)',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });

  private readonly duration = new Histogram({
    name: 'pai_request_duration_seconds',
    help: 'Time from the guard receiving a request to its signed reply being ready, by pattern',
    labelNames: ['pattern'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [this.registry],
  });

  private readonly requestLabels = new Map<
    string,
    Map<string, Labels<'pattern' | 'code'>>
  >();
  private readonly patternLabels = new Map<string, Labels<'pattern'>>();
  private readonly reasonLabels = new Map<string, Labels<'reason'>>();

  constructor(@Inject(APP_CONFIG) config: AppConfig) {
    this.enabled = config.http !== undefined;
    const load = () => this.server?.load ?? { connections: 0, inFlight: 0 };
    // Over NATS the service holds one connection, to the broker: there are no client
    // connections to count.
    if (config.transport.kind === 'tcp') {
      new Gauge({
        name: 'pai_tcp_connections',
        help: 'Open TCP connections to the protocol port',
        registers: [this.registry],
        collect() {
          this.set(load().connections);
        },
      });
    }
    new Gauge({
      name: 'pai_requests_in_flight',
      help: 'Requests received and not yet answered',
      registers: [this.registry],
      collect() {
        this.set(load().inFlight);
      },
    });
  }

  /** The protocol server whose connections and requests in flight are reported; set once it listens. */
  trackServer(server: TrackedServer): void {
    this.server = server;
  }

  /** Whether the tracked protocol server receives requests (TCP: listens; NATS: connected and subscribed). */
  serverReceiving(): boolean {
    return this.server?.isReceiving() === true;
  }

  /**
   * A gauge read at scrape time from `read` (a component's own count, which should be cheap or
   * cached). A read that fails or takes over 2 s shows as NaN: unknown, rather than stale or zero.
   */
  gauge(
    name: string,
    help: string,
    read: () => Promise<number> | number,
  ): void {
    new Gauge({
      name,
      help,
      registers: [this.registry],
      async collect() {
        try {
          this.set(
            await withTimeout(
              Promise.resolve(read()),
              SCRAPE_READ_TIMEOUT_MS,
              () => new Error('timed out'),
            ),
          );
        } catch {
          this.set(Number.NaN);
        }
      },
    });
  }

  /** Node's process metrics (CPU, memory, event loop lag), for a process that serves /metrics. */
  collectProcessMetrics(): void {
    if (this.processMetrics) return;
    this.processMetrics = true;
    collectDefaultMetrics({ register: this.processRegistry });
  }

  /** What /metrics answers: the service's series as they are now, then the process metrics. */
  async exposition(): Promise<string> {
    const service = await this.registry.metrics();
    if (!this.processMetrics) return service;
    return `${service}\n${await this.processText.get()}`;
  }

  /** The Content-Type of the exposition (Prometheus text format). */
  get contentType(): string {
    return this.registry.contentType;
  }

  /** One answered request. `rejection` is the guard's reason when the guard refused it. */
  recordRequest(
    pattern: string,
    code: string,
    seconds: number,
    rejection: string | undefined,
  ): void {
    if (!this.enabled) return;
    this.requests.inc(this.labelsFor(pattern, code));
    let patternLabels = this.patternLabels.get(pattern);
    if (!patternLabels) {
      patternLabels = { pattern };
      this.patternLabels.set(pattern, patternLabels);
    }
    this.duration.observe(patternLabels, seconds);
    if (rejection !== undefined) {
      let reasonLabels = this.reasonLabels.get(rejection);
      if (!reasonLabels) {
        reasonLabels = { reason: rejection };
        this.reasonLabels.set(rejection, reasonLabels);
      }
      this.rejections.inc(reasonLabels);
    }
  }

  private labelsFor(pattern: string, code: string): Labels<'pattern' | 'code'> {
    let byCode = this.requestLabels.get(pattern);
    if (!byCode) {
      byCode = new Map();
      this.requestLabels.set(pattern, byCode);
    }
    let labels = byCode.get(code);
    if (!labels) {
      labels = { pattern, code };
      byCode.set(code, labels);
    }
    return labels;
  }
}
