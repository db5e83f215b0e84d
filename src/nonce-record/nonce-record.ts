import {
  Inject,
  Injectable,
  Logger,
  OnApplicationShutdown,
  OnModuleDestroy,
  OnModuleInit,
} from '@nestjs/common';
import { setImmediate } from 'node:timers';
import { APP_CONFIG, type AppConfig } from '../config/config';
import { isDeadlock, isUniqueViolation } from '../database/database-errors';
import { Database } from '../database/database.service';
import { startPeriodicTask } from '../common/periodic-task';
import { UsedNonce } from './used-nonce.entity';
import { Clock } from '../common/clock';
import { ErrorCode } from '../protocol/error-code';
import { MemoryRecord } from './memory-record';
import { ProtocolError } from '../protocol/protocol-error';
import { SampledWarning } from '../common/sampled-warning';
import {
  NonceRecordUnavailableError,
  RedisRecord,
} from './redis-record';

/** Rows in one multi-row INSERT at most. */
const MAX_BATCH = 256;
/** Times one pair's INSERT is run when InnoDB keeps choosing it as a deadlock victim. */
const MAX_DEADLOCK_ATTEMPTS = 5;
/** Batches written at once at most (each holds one pooled connection); later pairs wait for the next. */
const MAX_BATCHES_IN_FLIGHT = 16;

interface PendingPair {
  kid: string;
  nonce: string;
  expiresAt: string;
  resolve: () => void;
  reject: (error: unknown) => void;
}

/**
 * The record of accepted (kid, nonce) pairs (PROTOCOL.md 3, step 5), in one of three forms
 * (`PAI_NONCE_STORE`).
 *
 * `database` (the default on MySQL): a table whose primary key decides, so a replay is refused after
 * a restart and by every instance sharing the database, and of N copies sent at once exactly one is
 * accepted. Pairs arriving together are written in one multi-row INSERT; a batch that hits a
 * duplicate (or is chosen as a deadlock victim) was rolled back whole by the database and is
 * written again row by row, so each pair still learns for itself whether it was new.
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
  private stopPurge?: () => void;
  private readonly memory?: MemoryRecord;
  private readonly redis?: RedisRecord;
  private redisCause = 'error';
  private readonly redisFailures = new SampledWarning(
    this.logger,
    (total) =>
      `nonce record unavailable (${this.redisCause}); ${total} request(s) refused so far`,
  );
  /** Memory record only: messages dated at or before this instant are refused. */
  readonly startedAt: number;
  /** Memory record only: messages dated up to this are checked against the table too. */
  private durableUntil = Infinity;
  private waiting: PendingPair[] = [];
  private flushScheduled = false;
  private batchesInFlight = 0;

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly database: Database,
    private readonly clock: Clock,
  ) {
    this.startedAt = clock.now();
    if (config.nonceStore === 'memory') {
      this.memory = new MemoryRecord(config.macWindowMs);
    } else if (config.nonceStore === 'redis') {
      this.redis = new RedisRecord({
        url: config.redis!.url,
        prefix: config.redis!.prefix,
        commandTimeoutMs: config.databaseTimeoutMs,
      });
    }
  }

  /**
   * Records the pair, valid until `ts` plus the window; throws REPLAY if it was recorded before.
   * Returns nothing when the pair was decided at once (memory record), else a promise.
   */
  consume(kid: string, nonce: string, ts: number): Promise<void> | void {
    if (this.redis) return this.consumeInRedis(this.redis, kid, nonce, ts);
    const memory = this.memory;
    if (!memory) return this.record(kid, nonce, ts);
    const now = this.clock.now();
    if (ts <= this.startedAt) {
      throw new ProtocolError(ErrorCode.STALE, { serverTime: now });
    }
    if (!memory.accept(kid, nonce, ts, now)) {
      throw new ProtocolError(ErrorCode.REPLAY);
    }
    if (ts > now || ts <= this.durableUntil) return this.record(kid, nonce, ts);
  }

  private async consumeInRedis(
    redis: RedisRecord,
    kid: string,
    nonce: string,
    ts: number,
  ): Promise<void> {
    const now = this.clock.now();
    let verdict;
    try {
      verdict = await redis.consume(
        kid,
        nonce,
        ts,
        now,
        this.config.macWindowMs,
      );
    } catch (error) {
      if (!(error instanceof NonceRecordUnavailableError)) throw error;
      // Fail closed: a message whose nonce cannot be recorded is not run.
      const cause = error.cause as NodeJS.ErrnoException | undefined;
      this.redisCause = cause?.code ?? cause?.name ?? 'error';
      this.redisFailures.record();
      throw new ProtocolError(ErrorCode.UNAVAILABLE);
    }
    if (verdict === 'replay') throw new ProtocolError(ErrorCode.REPLAY);
    if (verdict === 'stale') {
      throw new ProtocolError(ErrorCode.STALE, { serverTime: this.clock.now() });
    }
  }

  /** Pairs held in memory (memory record), for tests and the benchmark. */
  get memoryHeld(): number {
    return this.memory?.size ?? 0;
  }

  private record(kid: string, nonce: string, ts: number): Promise<void> {
    const expiresAt = String(ts + this.config.macWindowMs);
    return new Promise<void>((resolve, reject) => {
      this.waiting.push({ kid, nonce, expiresAt, resolve, reject });
      this.scheduleFlush();
    });
  }

  private scheduleFlush(): void {
    if (this.flushScheduled || this.batchesInFlight >= MAX_BATCHES_IN_FLIGHT)
      return;
    this.flushScheduled = true;
    // After the current I/O phase: every message read from the sockets in it joins the batch.
    setImmediate(() => {
      this.flushScheduled = false;
      void this.flush();
    });
  }

  private async flush(): Promise<void> {
    const batch = this.waiting.splice(0, MAX_BATCH);
    if (batch.length === 0) return;
    this.batchesInFlight += 1;
    if (this.waiting.length > 0) this.scheduleFlush();
    try {
      await this.insert(batch);
      batch.forEach((pair) => pair.resolve());
    } catch (error) {
      // Either way the statement was rolled back whole: each pair is written again on its own
      // (a lone pair that hit a duplicate needs no second try).
      if (isDeadlock(error) || (batch.length > 1 && isUniqueViolation(error))) {
        await Promise.all(batch.map((pair) => this.insertOne(pair)));
      } else {
        const refusal = isUniqueViolation(error)
          ? new ProtocolError(ErrorCode.REPLAY)
          : error;
        batch.forEach((pair) => pair.reject(refusal));
      }
    } finally {
      this.batchesInFlight -= 1;
      if (this.waiting.length > 0) this.scheduleFlush();
    }
  }

  private async insertOne(pair: PendingPair): Promise<void> {
    for (let attempt = 1; ; attempt += 1) {
      try {
        await this.insert([pair]);
        pair.resolve();
        return;
      } catch (error) {
        // Copies of one message reaching several instances at once insert one key on several
        // connections: InnoDB makes all but the first wait on shared locks, and when the first
        // rolls back (its batch held a duplicate) two waiters can deadlock. The victim's INSERT
        // was rolled back and is run again: it now meets the row (REPLAY) or writes it.
        if (isDeadlock(error) && attempt < MAX_DEADLOCK_ATTEMPTS) continue;
        pair.reject(
          isUniqueViolation(error) ? new ProtocolError(ErrorCode.REPLAY) : error,
        );
        return;
      }
    }
  }

  private insert(pairs: PendingPair[]): Promise<unknown> {
    // Plain SQL, the same on both databases: the query builder's per-row metadata work would
    // cost more than the statement.
    const parameters: string[] = [];
    for (const { kid, nonce, expiresAt } of pairs) {
      parameters.push(kid, nonce, expiresAt);
    }
    const rows = ',(?, ?, ?)'.repeat(pairs.length).slice(1);
    return this.database.run((manager) =>
      manager.query(
        `INSERT INTO nonces_usados (kid, nonce, expira_en) VALUES ${rows}`,
        parameters,
      ),
    );
  }

  /** Forgets every pair whose message can no longer pass the freshness check anyway. */
  async purgeExpired(): Promise<number> {
    const result = await this.database.run((manager) =>
      manager
        .createQueryBuilder()
        .delete()
        .from(UsedNonce)
        .where('expira_en < :now', { now: this.clock.now() })
        .execute(),
    );
    return result.affected ?? 0;
  }

  async onModuleInit(): Promise<void> {
    if (this.redis) {
      // Redis forgets expired pairs by itself (PX): no purge task.
      await this.redis.open(this.clock.now());
      return;
    }
    if (this.memory) {
      // Pairs in the table were accepted by a previous process with a ts up to their expiry.
      const row = await this.database.run((manager) =>
        manager
          .createQueryBuilder(UsedNonce, 'n')
          .select('MAX(n.expiresAt)', 'last')
          .getRawOne<{ last: string | number | null }>(),
      );
      this.durableUntil = Number(row?.last ?? 0);
    }
    // A tenth of the window keeps the record within 110% of what the window needs.
    const every = Math.min(
      Math.max(Math.floor(this.config.macWindowMs / 10), 1_000),
      30_000,
    );
    this.stopPurge = startPeriodicTask(
      'nonce purge',
      every,
      () => this.purgeExpired(),
      this.logger,
    );
  }

  /**
   * Readiness: the shared record answers and cannot evict pairs (redis record only; the others
   * live in the database).
   */
  async checkRecord(): Promise<void> {
    await this.redis?.assertNoEviction();
  }

  onModuleDestroy(): void {
    this.stopPurge?.();
  }

  /**
   * After the drain: Nest runs destroy hooks before it stops the server, and requests still in
   * flight then need the record to answer (the database closes at this stage too).
   */
  async onApplicationShutdown(): Promise<void> {
    await this.redis?.close();
  }
}
