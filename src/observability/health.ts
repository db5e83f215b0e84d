import {
  Inject,
  Injectable,
  ServiceUnavailableException,
} from '@nestjs/common';
import {
  HealthCheckService,
  HealthIndicatorService,
  TypeOrmHealthIndicator,
  type HealthCheckResult,
} from '@nestjs/terminus';
import type { Logger } from 'pino';
import { ModuleRef } from '@nestjs/core';
import { DataSource } from 'typeorm';
import { APP_CONFIG, type AppConfig } from '../config/config';
import { NonceStore } from '../protocol/nonce-store';
import { Database } from '../database/database.service';
import { LOGGER } from './logger';
import { Metrics } from './metrics';

const CHECK_TIMEOUT_MS = 2_000;

export interface Readiness {
  ready: boolean;
  body: HealthCheckResult | string | object;
}

/**
 * Readiness: the protocol port listens (over NATS: the broker is connected and PAI subscribed),
 * the database answers, every migration this build knows has been applied, and the Redis nonce
 * record answers when it is the one in use. Each probe costs two small queries (SELECT 1 and the
 * names in the migrations table); a change of state is logged once, not every probe.
 */
@Injectable()
export class Health {
  private lastReady?: boolean;

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

  async readiness(): Promise<Readiness> {
    let result: Readiness;
    try {
      const body = await this.checks.check([
        () => this.serverReceiving(),
        () =>
          this.typeorm.pingCheck('database', {
            connection: this.dataSource,
            timeout: CHECK_TIMEOUT_MS,
          }),
        () => this.migrationsApplied(),
        ...(this.config.nonceStore === 'redis'
          ? [() => this.nonceRecordAnswers()]
          : []),
      ]);
      result = { ready: true, body };
    } catch (error) {
      if (!(error instanceof ServiceUnavailableException)) throw error;
      result = { ready: false, body: error.getResponse() };
    }
    if (result.ready !== this.lastReady) {
      if (result.ready) this.logger.info('ready');
      else this.logger.warn({ health: result.body }, 'not ready');
      this.lastReady = result.ready;
    }
    return result;
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

  /** The Redis nonce record answers PING; without it every signed request is refused. */
  private nonceRecordAnswers() {
    return this.indicators
      .check('nonceRecord')
      .attempt(async () => {
        // Looked up at probe time: the protocol module depends on this one, not the reverse.
        await this.moduleRef.get(NonceStore, { strict: false }).pingRecord();
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
        return { applied: this.dataSource.migrations.length };
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
