import { setImmediate } from 'node:timers';
import type { Logger } from '@nestjs/common';
import type { Clock } from '../common/clock';
import { startPeriodicTask } from '../common/periodic-task';
import { isDeadlock, isUniqueViolation } from '../database/database-errors';
import type { Database } from '../database/database.service';
import { UsedNonce } from './used-nonce.entity';

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
  resolve: (accepted: boolean) => void;
  reject: (error: unknown) => void;
}

/**
 * Accepted pairs as rows of `nonces_usados`, whose primary key decides: a replay is refused after a
 * restart and by every instance sharing the database, and of N copies sent at once exactly one is
 * accepted. Pairs arriving together are written in one multi-row INSERT; a batch that hits a
 * duplicate (or is chosen as a deadlock victim) was rolled back whole by the database and is
 * written again row by row, so each pair still learns for itself whether it was new.
 */
export class DatabaseRecord {
  private waiting: PendingPair[] = [];
  private flushScheduled = false;
  private batchesInFlight = 0;
  private stopPurge?: () => void;

  constructor(
    private readonly database: Database,
    private readonly clock: Clock,
    private readonly windowMs: number,
  ) {}

  /** True when the pair is new (and now recorded until `ts` plus the window), false for a replay. */
  record(kid: string, nonce: string, ts: number): Promise<boolean> {
    const expiresAt = String(ts + this.windowMs);
    return new Promise<boolean>((resolve, reject) => {
      this.waiting.push({ kid, nonce, expiresAt, resolve, reject });
      this.scheduleFlush();
    });
  }

  /** The latest expiry of the recorded pairs, 0 when there are none. */
  async lastExpiry(): Promise<number> {
    const row = await this.database.run((manager) =>
      manager
        .createQueryBuilder(UsedNonce, 'n')
        .select('MAX(n.expiresAt)', 'last')
        .getRawOne<{ last: string | number | null }>(),
    );
    return Number(row?.last ?? 0);
  }

  count(): Promise<number> {
    return this.database.run((manager) => manager.count(UsedNonce));
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

  startPurging(logger: Logger): void {
    // A tenth of the window keeps the record within 110% of what the window needs.
    const every = Math.min(
      Math.max(Math.floor(this.windowMs / 10), 1_000),
      30_000,
    );
    this.stopPurge = startPeriodicTask(
      'nonce purge',
      every,
      () => this.purgeExpired(),
      logger,
    );
  }

  stopPurging(): void {
    this.stopPurge?.();
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
      batch.forEach((pair) => pair.resolve(true));
    } catch (error) {
      // Either way the statement was rolled back whole: each pair is written again on its own
      // (a lone pair that hit a duplicate needs no second try).
      if (isDeadlock(error) || (batch.length > 1 && isUniqueViolation(error))) {
        await Promise.all(batch.map((pair) => this.insertOne(pair)));
      } else if (isUniqueViolation(error)) {
        batch.forEach((pair) => pair.resolve(false));
      } else {
        batch.forEach((pair) => pair.reject(error));
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
        pair.resolve(true);
        return;
      } catch (error) {
        // Copies of one message reaching several instances at once insert one key on several
        // connections: InnoDB makes all but the first wait on shared locks, and when the first
        // rolls back (its batch held a duplicate) two waiters can deadlock. The victim's INSERT
        // was rolled back and is run again: it now meets the row (REPLAY) or writes it.
        if (isDeadlock(error) && attempt < MAX_DEADLOCK_ATTEMPTS) continue;
        if (isUniqueViolation(error)) pair.resolve(false);
        else pair.reject(error);
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
}
