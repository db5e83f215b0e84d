import {
  Inject,
  Injectable,
  Logger,
  OnApplicationShutdown,
  OnModuleDestroy,
  OnModuleInit,
} from '@nestjs/common';
import { Clock } from '../common/clock';
import { APP_CONFIG, type AppConfig } from '../config/config';
import { RecentResult } from '../common/recent-result';
import { Database } from '../database/database.service';
import { Health } from '../observability/health';
import { Metrics } from '../observability/metrics';
import { DatabaseRecord } from './database-record';
import { MemoryRecord } from './memory-record';
import { RedisRecord } from './redis-record';

/**
 * The pairs held are counted at most this often, however often /metrics is scraped: in the
 * database the count reads the whole table, and the side port is unauthenticated.
 */
export const HELD_COUNT_MAX_AGE_MS = 1_000;

/** What the record says of a (kid, nonce) pair. */
export type NonceVerdict = 'accepted' | 'replay' | 'stale';

/**
 * The record of accepted (kid, nonce) pairs (docs/protocol.md 3, step 5), in one of three forms
 * (`PAI_NONCE_STORE`). It says whether a pair is new; what the protocol answers is the guard's.
 *
 * `database` (the default on MySQL): rows of a table whose primary key decides (DatabaseRecord).
 *
 * `memory` (the default on SQLite, whose database belongs to one process): keyed fingerprints in
 * this process (MemoryRecord). What a previous process accepted is not in memory, so messages
 * dated at or before this process started are refused as STALE (with serverTime: the client module
 * re-signs with a fresh ts and nonce and is accepted). The one message a previous process could have
 * accepted with a later ts is one dated in the future; such messages (ts ahead of the clock) are also
 * written to the table, and a process that finds pairs there at start checks every message dated up
 * to the last of their expiries against the table as well.
 *
 * `redis` (optional, for several instances that would rather not write every nonce to MySQL): one
 * atomic script per message in a shared Redis (RedisRecord), which forgets pairs by itself
 * when their window ends and refuses as STALE what predates a loss of Redis's data.
 */
@Injectable()
export class NonceRecord
  implements OnModuleInit, OnModuleDestroy, OnApplicationShutdown
{
  private readonly logger = new Logger(NonceRecord.name);
  private readonly table: DatabaseRecord;
  private readonly memory?: MemoryRecord;
  private readonly redis?: RedisRecord;
  /** Memory record only: messages dated at or before this instant are refused. */
  readonly startedAt: number;
  /** Memory record only: messages dated up to this are checked against the table too. */
  private durableUntil = Infinity;

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    database: Database,
    private readonly clock: Clock,
    private readonly health: Health,
    private readonly metrics: Metrics,
  ) {
    this.startedAt = clock.now();
    this.table = new DatabaseRecord(database, clock, config.macWindowMs);
    const record = config.nonceRecord;
    if (record.kind === 'memory') {
      this.memory = new MemoryRecord(config.macWindowMs);
    } else if (record.kind === 'redis') {
      this.redis = new RedisRecord({
        url: record.url,
        prefix: record.prefix,
        commandTimeoutMs: config.databaseTimeoutMs,
      });
    }
  }

  /**
   * Records the pair, kept until `ts` plus the window. Decided at once (no promise) when the
   * memory record alone can tell; a record that cannot be reached throws UnavailableError.
   */
  consume(
    kid: string,
    nonce: string,
    ts: number,
  ): NonceVerdict | Promise<NonceVerdict> {
    if (this.redis) {
      return this.redis.consume(
        kid,
        nonce,
        ts,
        this.clock.now(),
        this.config.macWindowMs,
      );
    }
    const memory = this.memory;
    if (!memory) return this.fromTable(kid, nonce, ts);
    const now = this.clock.now();
    if (ts <= this.startedAt) return 'stale';
    if (!memory.accept(kid, nonce, ts, now)) return 'replay';
    if (ts > now || ts <= this.durableUntil) {
      return this.fromTable(kid, nonce, ts);
    }
    return 'accepted';
  }

  private async fromTable(
    kid: string,
    nonce: string,
    ts: number,
  ): Promise<NonceVerdict> {
    return (await this.table.record(kid, nonce, ts)) ? 'accepted' : 'replay';
  }

  /** Pairs held in memory (memory record), for tests and the benchmark. */
  get memoryHeld(): number {
    return this.memory?.size ?? 0;
  }

  private readonly heldRows = new RecentResult(
    () => this.table.count(),
    HELD_COUNT_MAX_AGE_MS,
  );

  /** Forgets every pair whose message can no longer pass the freshness check anyway. */
  purgeExpired(): Promise<number> {
    return this.table.purgeExpired();
  }

  async onModuleInit(): Promise<void> {
    this.observe();
    if (this.redis) {
      // Redis forgets expired pairs by itself (PX): no purge task.
      await this.redis.open(this.clock.now());
      return;
    }
    if (this.memory) {
      // Pairs in the table were accepted by a previous process with a ts up to their expiry.
      this.durableUntil = await this.table.lastExpiry();
    }
    this.table.startPurging(this.logger);
  }

  /**
   * Readiness, for the Redis record: it answers and cannot evict pairs (the others live in the
   * database, whose readiness is its own). The gauge of pairs held: not for Redis, where counting
   * keys would mean a SCAN per scrape (Redis's own exporter reports its keyspace).
   */
  private observe(): void {
    const { redis, memory } = this;
    if (redis) {
      this.health.register('nonceRecord', () => redis.assertNoEviction());
      return;
    }
    this.metrics.gauge(
      'pai_nonce_records',
      'Accepted (kid, nonce) pairs kept against replays (in memory, or rows of nonces_usados)',
      () => (memory ? memory.size : this.heldRows.get()),
    );
  }

  onModuleDestroy(): void {
    this.table.stopPurging();
  }

  /**
   * After the drain: Nest runs destroy hooks before it stops the server, and requests still in
   * flight then need the record to answer (the database closes at this stage too).
   */
  async onApplicationShutdown(): Promise<void> {
    await this.redis?.close();
  }
}
