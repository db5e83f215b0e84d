import {
  Inject,
  Injectable,
  Logger,
  OnApplicationBootstrap,
  OnApplicationShutdown,
} from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import type { EntityManager } from 'typeorm';
import { settlesWithin } from '../common/deadline';
import { SampledWarning } from '../common/sampled-warning';
import { APP_CONFIG, type AppConfig } from '../config/config';
import { isUniqueViolation } from '../database/database-errors';
import { Database } from '../database/database.service';
import {
  blockHash,
  GENESIS_HASH,
  leafHash,
  merkleRoot,
} from '../protocol/receipt';
import { Transaction } from '../transactions/transaction.entity';
import { toView } from '../transactions/transaction-view';
import { LedgerBlock } from './ledger-block.entity';
import { LedgerEntry } from './ledger-entry.entity';
import { LedgerLease } from './ledger-lease.entity';
import { databaseNow, sealOf } from './seal';

/**
 * Rows in one block at most: a block is one database transaction, kept short because on SQLite
 * it waits in the one queue with the requests; a receipt's path grows by one hash per doubling.
 */
export const MAX_BLOCK_ROWS = 1_000;
/** Entries in one multi-row INSERT (four parameters each, far below either database's limit). */
const ENTRIES_PER_INSERT = 250;
const LEASE_NAME = 'sealer';
/** How long a stop waits for the block in progress, then for the lease's release. */
const STOP_WAIT_MS = 1_000;

/**
 * Seals committed transactions into blocks, on one instance at a time (docs/ledger.md).
 *
 * Election: the lease row is taken or renewed by one conditional UPDATE (free, expired, or ours),
 * which both databases decide atomically; the winner seals until it stops renewing. Safety does
 * not rest on the lease: a block is one transaction writing its block row and its entries, and
 * their primary keys (block number, transaction id) refuse a second writer, so two sealers that
 * both believe they hold the lease lose one block's work, never duplicate or fork it.
 *
 * Ordering: rows are read back by id from what is committed, whoever inserted them and however.
 * A lower id can commit after a higher one (MySQL hands ids out at INSERT, not at COMMIT), so a
 * block ends before the first row younger than the settle window by the database clock: a row
 * still uncommitted behind it is older than that window, which no insert is allowed to last.
 */
@Injectable()
export class Sealer implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger(Sealer.name);
  private readonly holder = randomUUID();
  private readonly leaseMs: number;
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;
  private stopped = false;
  private lastFailure = '';
  /** A database that is away fails every run: one line per window, not one per interval. */
  private readonly failures = new SampledWarning(
    this.logger,
    (total) => `sealing failed ${total} times; last: ${this.lastFailure}`,
  );

  constructor(
    private readonly database: Database,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {
    // Long enough that a holder renewing every interval keeps it through a slow statement;
    // short enough that another instance takes over soon after the holder dies.
    this.leaseMs = Math.max(10 * config.ledger.sealIntervalMs, 5_000);
  }

  onApplicationBootstrap(): void {
    const every = this.config.ledger.sealIntervalMs;
    if (every === 0) return;
    this.timer = setInterval(() => this.tick(), every);
    this.timer.unref();
    this.tick();
  }

  /**
   * Stops sealing and hands the lease back. Bounded: a block still running when the database
   * closes is rolled back whole, which loses nothing (its rows are sealed by the next holder), so
   * a stop never waits on a database that hangs.
   */
  async onApplicationShutdown(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    if (this.config.ledger.sealIntervalMs === 0) return;
    await settlesWithin(this.running ?? Promise.resolve(), STOP_WAIT_MS);
    // Handed back at once, so another instance need not wait for the lease to expire.
    await settlesWithin(
      this.database.run((manager) =>
        manager
          .createQueryBuilder()
          .update(LedgerLease)
          .set({ expiresAt: '0' })
          .where('name = :name AND holder = :holder', {
            name: LEASE_NAME,
            holder: this.holder,
          })
          .execute(),
      ),
      STOP_WAIT_MS,
    );
  }

  private tick(): void {
    if (this.running || this.stopped) return;
    this.running = this.sealPending()
      .then(() => undefined)
      .catch((error: unknown) => {
        this.lastFailure = (error as Error).message;
        this.failures.record(() =>
          this.logger.warn(`sealing failed: ${this.lastFailure}`),
        );
      })
      .finally(() => (this.running = undefined));
  }

  /** Takes or renews the lease, then seals every settled row, block after block. */
  async sealPending(): Promise<number> {
    const started = Date.now();
    if (!(await this.takeLease())) return 0;
    let total = 0;
    // Catching up (rows from before the ledger existed, or after a long stop) goes on while the
    // lease taken above is still safely ours.
    while (!this.stopped && Date.now() - started < this.leaseMs / 2) {
      const sealed = await this.sealBlock();
      total += sealed;
      if (sealed < MAX_BLOCK_ROWS) break;
    }
    return total;
  }

  async takeLease(): Promise<boolean> {
    const result = await this.database.run(async (manager) => {
      const now = await databaseNow(manager, this.database.dialect);
      return manager
        .createQueryBuilder()
        .update(LedgerLease)
        .set({ holder: this.holder, expiresAt: String(now + this.leaseMs) })
        .where('name = :name AND (holder = :holder OR expires_at < :now)', {
          name: LEASE_NAME,
          holder: this.holder,
          now,
        })
        .execute();
    });
    return (result.affected ?? 0) > 0;
  }

  /** Seals the next block; the number of rows it holds (0: nothing has settled). */
  async sealBlock(): Promise<number> {
    try {
      return await this.database.transaction((manager) => this.write(manager));
    } catch (error) {
      // Another sealer wrote this block first: its rows are sealed, nothing to undo.
      if (isUniqueViolation(error)) return 0;
      throw error;
    }
  }

  private async write(manager: EntityManager): Promise<number> {
    const now = await databaseNow(manager, this.database.dialect);
    const [last] = await manager.find(LedgerBlock, {
      order: { number: 'DESC' },
      take: 1,
    });
    const rows = await manager
      .createQueryBuilder(Transaction, 't')
      .where('t.id > :after', { after: last?.lastId ?? '0' })
      .orderBy('t.id', 'ASC')
      .limit(MAX_BLOCK_ROWS)
      .getMany();
    const cutoff = now - this.config.ledger.settleMs;
    const young = rows.findIndex((row) => row.createdAt.getTime() > cutoff);
    const settled = young === -1 ? rows : rows.slice(0, young);
    if (settled.length === 0) return 0;

    const leaves = settled.map((row) => leafHash(toView(row)));
    const header = {
      number: Number(last?.number ?? 0) + 1,
      firstId: String(settled[0].id),
      lastId: String(settled[settled.length - 1].id),
      rowCount: settled.length,
      merkleRoot: merkleRoot(leaves),
      previousHash: last?.hash ?? GENESIS_HASH,
      sealedAt: new Date(now).toISOString(),
    };
    const hash = blockHash(header);
    await manager.insert(LedgerBlock, {
      ...header,
      number: String(header.number),
      hash,
      seal: sealOf(this.config.ledgerKey, hash),
    });
    for (let start = 0; start < settled.length; start += ENTRIES_PER_INSERT) {
      const chunk = settled.slice(start, start + ENTRIES_PER_INSERT);
      await manager.insert(
        LedgerEntry,
        chunk.map((row, offset) => ({
          transactionId: String(row.id),
          blockNumber: String(header.number),
          position: start + offset,
          leafHash: leaves[start + offset],
        })),
      );
    }
    return settled.length;
  }
}
