import { BeforeApplicationShutdown, Inject, Injectable } from '@nestjs/common';
import {
  HealthCheckService,
  HealthIndicatorService,
  type HealthCheckResult,
  type HealthIndicatorResult,
} from '@nestjs/terminus';
import type { Logger } from 'pino';
import { RecentResult } from '../common/recent-result';
import { APP_CONFIG, type AppConfig } from '../config/config';
import { LOGGER } from './logger';
import { Metrics } from './metrics';

const CHECK_TIMEOUT_MS = 2_000;
/**
 * However many probes arrive, the dependencies are checked at most this often: a flood of
 * unauthenticated probes must not turn into a flood of queries, and a dependency that goes down
 * still shows within about this time.
 */
export const READINESS_MAX_AGE_MS = 1_000;

type ComponentStatus = Record<string, { status: 'up' | 'down' }>;

/** What /health/ready answers: terminus' shape, each component reduced to up or down. */
export interface ReadinessBody {
  status: HealthCheckResult['status'];
  info?: ComponentStatus;
  error?: ComponentStatus;
  details: ComponentStatus;
}

export interface Readiness {
  ready: boolean;
  body: ReadinessBody;
}

/**
 * One component's check: resolves when it is up, throws when it is down; the error's message is
 * the reason, for the log only.
 */
export type ReadinessCheck = () => Promise<void> | void;

const SHUTTING_DOWN: Readiness = {
  ready: false,
  body: { status: 'shutting_down', details: {} },
};

/**
 * Readiness: the protocol port listens (over NATS: the broker is connected and PAI subscribed),
 * and every component that registered a check passes it (the database answers and its migrations
 * are applied; the Redis nonce record answers and never evicts keys, when it is the one in use).
 * The components register themselves, so this room depends on none of them.
 *
 * The port is unauthenticated, so the answer names components and up or down only: why a check
 * failed (a driver's message with an address, a pending migration's name) goes to the log, once
 * per change of state. The checks (two small queries, an INFO to Redis) run at most once per
 * READINESS_MAX_AGE_MS, shared by every probe meanwhile.
 */
@Injectable()
export class Health implements BeforeApplicationShutdown {
  private lastState?: string;
  private shuttingDown = false;
  private readonly registered = new Map<string, ReadinessCheck>();
  private readonly latest = new RecentResult(
    () => this.check(),
    READINESS_MAX_AGE_MS,
  );

  constructor(
    private readonly checks: HealthCheckService,
    private readonly indicators: HealthIndicatorService,
    private readonly metrics: Metrics,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  /** Adds a component to readiness, in the order of registration. */
  register(name: string, check: ReadinessCheck): void {
    this.registered.set(name, check);
  }

  readiness(): Promise<Readiness> {
    // At once, not up to READINESS_MAX_AGE_MS later: balancers stop sending while the drain runs.
    if (this.shuttingDown) return Promise.resolve(SHUTTING_DOWN);
    return this.latest.get();
  }

  beforeApplicationShutdown(): void {
    this.shuttingDown = true;
  }

  private async check(): Promise<Readiness> {
    let ready: boolean;
    let full: HealthCheckResult | undefined;
    let failure: unknown;
    try {
      full = await this.checks.check([
        () => this.serverReceiving(),
        ...[...this.registered].map(
          ([name, check]) =>
            () =>
              this.indicators
                .check(name)
                .attempt(async () => {
                  await check();
                })
                .withTimeout(CHECK_TIMEOUT_MS),
        ),
      ]);
      ready = true;
    } catch (error) {
      // Terminus throws ServiceUnavailableException with the result when a check is down;
      // anything else is a failure of the checking itself, and not ready all the same.
      ready = false;
      const response = (
        error as { getResponse?: () => unknown }
      ).getResponse?.();
      if (isHealthCheckResult(response)) full = response;
      else failure = error;
    }
    const body: ReadinessBody = full
      ? publicBody(full)
      : { status: 'error', details: {} };
    const state = JSON.stringify(body);
    if (state !== this.lastState) {
      this.lastState = state;
      if (ready) this.logger.info('ready');
      else if (full) this.logger.warn({ health: full }, 'not ready');
      // The message only: a stack trace has no place in the log.
      else
        this.logger.error(
          { reason: String((failure as Error)?.message ?? failure) },
          'not ready: the check itself failed',
        );
    }
    return { ready, body };
  }

  private serverReceiving() {
    const nats = this.config.transport.kind === 'nats';
    const check = this.indicators.check(nats ? 'nats' : 'tcp');
    if (this.metrics.serverReceiving()) return check.up();
    return check.down(
      nats
        ? 'not connected to the NATS broker, or not subscribed'
        : 'the protocol port is not listening',
    );
  }
}

function isHealthCheckResult(value: unknown): value is HealthCheckResult {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as HealthCheckResult).details === 'object'
  );
}

/** Component names and up or down: every other field (messages, timings) is left out. */
function publicBody(full: HealthCheckResult): ReadinessBody {
  const reduce = (
    results: Partial<HealthIndicatorResult> | undefined,
  ): ComponentStatus | undefined => {
    if (!results) return undefined;
    return Object.fromEntries(
      Object.entries(results).map(([name, result]) => [
        name,
        { status: result?.status === 'up' ? 'up' : 'down' },
      ]),
    );
  };
  return {
    status: full.status,
    info: reduce(full.info),
    error: reduce(full.error),
    details: reduce(full.details) ?? {},
  };
}
