import { Inject, Injectable } from '@nestjs/common';
import type BetterSqlite3 from 'better-sqlite3';
import { DataSource, EntityManager } from 'typeorm';
import { APP_CONFIG, type AppConfig } from '../config/config';
import { withTimeout } from '../common/deadline';
import { UnavailableError } from '../common/unavailable';
import {
  DatabaseTimeoutError,
  describeUnavailable,
  isDatabaseUnavailable,
  isDeadlock,
} from './database-errors';

const DEADLOCK_ATTEMPTS = 3;

/**
 * The only way the service touches its database.
 *
 * better-sqlite3 is one synchronous connection, and TypeORM runs every concurrent transaction on it:
 * a second request's statements land inside the first one's BEGIN, and one ROLLBACK undoes both
 * (measured: one failing save lost 200 good ones). On SQLite every unit of work therefore runs
 * alone, in arrival order; nothing is lost to that, as the driver could only run one at a time
 * anyway. MySQL gives each transaction its own pooled connection and needs no queue.
 */
@Injectable()
export class Database {
  readonly dialect: 'mysql' | 'sqlite';
  private tail: Promise<unknown> = Promise.resolve();

  private readonly timeoutMs: number;

  constructor(
    private readonly dataSource: DataSource,
    @Inject(APP_CONFIG) config: Pick<AppConfig, 'databaseTimeoutMs'>,
  ) {
    this.dialect = dataSource.options.type === 'mysql' ? 'mysql' : 'sqlite';
    this.timeoutMs = config.databaseTimeoutMs;
  }

  /**
   * Runs `work` in one database transaction: all of it commits, or none of it. A transaction
   * that InnoDB chose as a deadlock victim was rolled back whole, so it is run again.
   */
  async transaction<T>(
    work: (manager: EntityManager) => Promise<T>,
  ): Promise<T> {
    for (let attempt = 1; ; attempt += 1) {
      try {
        return await this.exclusive(() => this.dataSource.transaction(work));
      } catch (error) {
        if (attempt >= DEADLOCK_ATTEMPTS || !isDeadlock(error)) throw error;
      }
    }
  }

  /**
   * MySQL: runs a script of several statements, its own START TRANSACTION … COMMIT included, on
   * one pooled connection in one round trip, and resolves with each statement's result. A script
   * that fails part-way is rolled back before the connection goes back to the pool; one that
   * InnoDB chose as a deadlock victim was rolled back whole and is run again.
   */
  async script(
    sql: string,
    parameters: readonly unknown[],
  ): Promise<unknown[]> {
    for (let attempt = 1; ; attempt += 1) {
      try {
        return await this.exclusive(async () => {
          const runner = this.dataSource.createQueryRunner();
          try {
            return (await runner.query(sql, [...parameters])) as unknown[];
          } catch (error) {
            // A lost connection cannot be rolled back, and needs not be: the server does it.
            await runner.query('ROLLBACK').catch(() => undefined);
            throw error;
          } finally {
            await runner.release();
          }
        });
      } catch (error) {
        if (attempt >= DEADLOCK_ATTEMPTS || !isDeadlock(error)) throw error;
      }
    }
  }

  /**
   * SQLite: `work` gets better-sqlite3's own connection, in the queue like every other unit of
   * work, for prepared statements run synchronously inside one `db.transaction()`: TypeORM's
   * per-query promise and metadata work would cost more than the statements.
   */
  sqlite<T>(work: (db: BetterSqlite3.Database) => T): Promise<T> {
    return this.exclusive(() =>
      Promise.resolve().then(() =>
        work(
          (
            this.dataSource.driver as unknown as {
              databaseConnection: BetterSqlite3.Database;
            }
          ).databaseConnection,
        ),
      ),
    );
  }

  /** Runs read-only `work` (or a single statement, atomic by itself) outside an explicit transaction. */
  run<T>(work: (manager: EntityManager) => Promise<T>): Promise<T> {
    return this.exclusive(() => work(this.dataSource.manager));
  }

  /**
   * Every unit of work answers within PAI_DATABASE_TIMEOUT_MS: a database that went away or hangs
   * (a network partition does not refuse, it says nothing) turns into UNAVAILABLE, not a request
   * that never ends. Work still queued for SQLite when its time is up is not started at all.
   * Work already running on MySQL may still commit after its caller was told UNAVAILABLE; that is
   * what the idempotency reference of transactions.create is for.
   */
  private exclusive<T>(work: () => Promise<T>): Promise<T> {
    let expired = false;
    const guarded = () =>
      expired
        ? Promise.reject(new DatabaseTimeoutError(this.timeoutMs))
        : work();
    let result: Promise<T>;
    if (this.dialect === 'mysql') {
      result = guarded();
    } else {
      result = this.tail.then(guarded);
      // The queue goes on after a failure; the caller still sees it through `result`.
      this.tail = result.catch(() => undefined);
    }
    return withTimeout(result, this.timeoutMs, () => {
      expired = true;
      return new DatabaseTimeoutError(this.timeoutMs);
    }).catch((error: unknown) => {
      // One kind of failure for every caller above: the protocol answers it UNAVAILABLE.
      if (!isDatabaseUnavailable(error)) throw error;
      throw new UnavailableError('database', describeUnavailable(error), {
        cause: error,
      });
    });
  }
}
