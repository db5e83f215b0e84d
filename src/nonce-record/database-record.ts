import type { Logger } from '@nestjs/common';
import type { Clock } from '../common/clock';
import { Batcher, settle } from '../common/batcher';
import { startPeriodicTask } from '../common/periodic-task';
import { isDeadlock, isUniqueViolation } from '../database/database-errors';
import type { Database } from '../database/database.service';
import { UsedNonce } from './used-nonce.entity';

/** Rows in one multi-row INSERT at most. */
const MAX_BATCH = 256;
/** Times one pair's INSERT is run when InnoDB keeps choosing it as a deadlock victim. */
const MAX_DEADLOCK_ATTEMPTS = 5;
/** Batches written at once at most (each holds one pooled connection). */
const MAX_BATCHES_IN_FLIGHT = 16;

interface Pair {
  kid: string;
  nonce: string;
  expiresAt: string;
}

/**
 * Accepted pairs as rows of `nonces_usados`, whose primary key decides: a replay is refused after a
 * restart and by every instance sharing the database, and of N copies sent at once exactly one is
 * accepted. Pairs arriving together are written in one multi-row INSERT; a batch that hits a
 * duplicate (or is chosen as a deadlock victim) was rolled back whole by the database and is
 * written again row by row, so each pair still learns for itself whether it was new.
 */
export class DatabaseRecord {
  private readonly batcher = new Batcher<Pair, boolean>(
    (pairs) => this.insertBatch(pairs),
    { maxBatch: MAX_BATCH, maxInFlight: MAX_BATCHES_IN_FLIGHT },
  );
  private stopPurge?: () => void;

  constructor(
    private readonly database: Database,
    private readonly clock: Clock,
    private readonly windowMs: number,
  ) {}

  /** True when the pair is new (and now recorded until `ts` plus the window), false for a replay. */
  record(kid: string, nonce: string, ts: number): Promise<boolean> {
    return this.batcher.submit({
      kid,
      nonce,
      expiresAt: String(ts + this.windowMs),
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

  private async insertBatch(
    pairs: readonly Pair[],
  ): Promise<PromiseSettledResult<boolean>[]> {
    try {
      await this.insert(pairs);
      return pairs.map(() => ({ status: 'fulfilled', value: true }));
    } catch (error) {
      // Either way the statement was rolled back whole: each pair is written again on its own
      // (a lone pair that hit a duplicate needs no second try).
      if (isDeadlock(error) || (pairs.length > 1 && isUniqueViolation(error))) {
        return Promise.all(
          pairs.map((pair) => settle(() => this.insertOne(pair))),
        );
      }
      if (isUniqueViolation(error))
        return [{ status: 'fulfilled', value: false }];
      throw error;
    }
  }

  private async insertOne(pair: Pair): Promise<boolean> {
    for (let attempt = 1; ; attempt += 1) {
      try {
        await this.insert([pair]);
        return true;
      } catch (error) {
        // Copies of one message reaching several instances at once insert one key on several
        // connections: InnoDB makes all but the first wait on shared locks, and when the first
        // rolls back (its batch held a duplicate) two waiters can deadlock. The victim's INSERT
        // was rolled back and is run again: it now meets the row (REPLAY) or writes it.
        if (isDeadlock(error) && attempt < MAX_DEADLOCK_ATTEMPTS) continue;
        if (isUniqueViolation(error)) return false;
        throw error;
      }
    }
  }

  private insert(pairs: readonly Pair[]): Promise<unknown> {
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
