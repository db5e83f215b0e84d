import { BeforeApplicationShutdown, Inject, Injectable } from '@nestjs/common';
import {
  HealthCheckService,
  HealthIndicatorService,
  TypeOrmHealthIndicator,
  type HealthCheckResult,
  type HealthIndicatorResult,
} from '@nestjs/terminus';
import type { Logger } from 'pino';
import { ModuleRef } from '@nestjs/core';
import { DataSource } from 'typeorm';
import { RecentResult } from '../common/recent-result';
import { APP_CONFIG, type AppConfig } from '../config/config';
import { NonceRecord } from '../nonce-record/nonce-record';
import { Database } from '../database/database.service';
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

const SHUTTING_DOWN: Readiness = {
  ready: false,
  body: { status: 'shutting_down', details: {} },
};

/**
 * Readiness: the protocol port listens (over NATS: the broker is connected and PAI subscribed),
 * the database answers, every migration this build knows has been applied, and the Redis nonce
 * record answers and never evicts keys when it is the one in use.
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
  private readonly latest = new RecentResult(
    () => this.check(),
    READINESS_MAX_AGE_MS,
  );

  constructor(
    private readonly checks: HealthCheckService,
    private readonly indicators: HealthIndicatorService,
    private readonly typeorm: TypeOrmHealthIndicator,
    private readonly dataSource: DataSource,
    private readonly database: Database,
    private readonly metrics: Metrics,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(LOGGER) private readonly logger: Logger,
    private readonly moduleRef: ModuleRef,
  ) {}

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
        () =>
          this.typeorm.pingCheck('database', {
            connection: this.dataSource,
            timeout: CHECK_TIMEOUT_MS,
          }),
        () => this.migrationsApplied(),
        ...(this.config.nonceStore === 'redis'
          ? [() => this.nonceRecordSafe()]
          : []),
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

  /**
   * The Redis nonce record answers and reports maxmemory-policy noeviction; without it every
   * signed request is refused, and with eviction a replay could be accepted.
   */
  private nonceRecordSafe() {
    return this.indicators
      .check('nonceRecord')
      .attempt(async () => {
        // Looked up at probe time: the protocol module depends on this one, not the reverse.
        await this.moduleRef.get(NonceRecord, { strict: false }).checkRecord();
      })
      .withTimeout(CHECK_TIMEOUT_MS);
  }

  private migrationsApplied() {
    return this.indicators
      .check('migrations')
      .attempt(async () => {
        const pending = await this.pendingMigrations();
        if (pending.length > 0) {
          throw new Error(`pending: ${pending.join(', ')}`);
        }
      })
      .withTimeout(CHECK_TIMEOUT_MS);
  }

  /** The migrations this build knows that the database's migrations table does not list. */
  async pendingMigrations(): Promise<string[]> {
    const table = this.dataSource.driver.escape(
      this.dataSource.options.migrationsTableName ?? 'migrations',
    );
    const rows = await this.database.run((manager) =>
      manager.query<{ name: string }[]>(`SELECT name FROM ${table}`),
    );
    const applied = new Set(rows.map((row) => row.name));
    return this.dataSource.migrations
      .map((migration) => migration.name ?? migration.constructor.name)
      .filter((name) => !applied.has(name));
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
