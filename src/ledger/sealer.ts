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
} from '@pai/client/protocol/receipt';
import { LedgerBlock } from './ledger-block.entity';
import { LedgerLease } from './ledger-lease.entity';
import { databaseNow, sealOf } from './seal';
import { SELECT_ROWS, viewOf, type TransactionRow } from './stored-row';

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
    const rows = await manager.query<TransactionRow[]>(
      `${SELECT_ROWS} WHERE id > ? ORDER BY id LIMIT ${MAX_BLOCK_ROWS}`,
      [last?.lastId ?? '0'],
    );
    const cutoff = now - this.config.ledger.settleMs;
    const views = rows.map(viewOf);
    const young = views.findIndex(
      (view) => !(Date.parse(view.createdAt) <= cutoff),
    );
    const settled = young === -1 ? views : views.slice(0, young);
    if (settled.length === 0) return 0;

    const leaves = settled.map(leafHash);
    const header = {
      number: Number(last?.number ?? 0) + 1,
      firstId: settled[0].id,
      lastId: settled[settled.length - 1].id,
      rowCount: settled.length,
      merkleRoot: merkleRoot(leaves),
      previousHash: last?.hash ?? GENESIS_HASH,
      sealedAt: new Date(now).toISOString(),
    };
    const hash = blockHash(header);
    await manager.query(
      'INSERT INTO ledger_blocks (block_number, first_id, last_id, row_count, merkle_root, previous_hash, hash, seal, sealed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
      [
        String(header.number),
        header.firstId,
        header.lastId,
        header.rowCount,
        header.merkleRoot,
        header.previousHash,
        hash,
        sealOf(this.config.ledgerKey, hash),
        header.sealedAt,
      ],
    );
    // Plain multi-row INSERTs, the same on both databases (the query builder's per-row work
    // would cost more than the statements).
    for (let start = 0; start < settled.length; start += ENTRIES_PER_INSERT) {
      const chunk = settled.slice(start, start + ENTRIES_PER_INSERT);
      const parameters: (string | number)[] = [];
      chunk.forEach((view, offset) =>
        parameters.push(
          view.id,
          String(header.number),
          start + offset,
          leaves[start + offset],
        ),
      );
      await manager.query(
        `INSERT INTO ledger_entries (transaction_id, block_number, position, leaf_hash) VALUES ${',(?, ?, ?, ?)'.repeat(chunk.length).slice(1)}`,
        parameters,
      );
    }
    return settled.length;
  }
}
