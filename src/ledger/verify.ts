import type { DataSource, QueryRunner } from 'typeorm';
import {
  blockHash,
  GENESIS_HASH,
  leafHash,
  merkleRoot,
  type LedgerDigest,
} from '@pai/client/protocol/receipt';
import { sealMatches } from './seal';
import { SELECT_ROWS, viewOf, type TransactionRow } from './stored-row';

/** What `pai-server ledger verify` can find wrong, first one named (docs/ledger.md). */
export type ProblemKind =
  | 'row-edited'
  | 'row-deleted'
  | 'row-inserted'
  | 'rows-swapped'
  | 'entries-edited'
  | 'block-edited'
  | 'block-missing'
  | 'chain-broken'
  | 'seal-invalid'
  | 'digest-mismatch'
  | 'digest-missing';

export interface Problem {
  kind: ProblemKind;
  block?: number;
  transactionId?: string;
  message: string;
}

export interface VerifyReport {
  clean: boolean;
  blocks: number;
  sealedRows: number;
  /** Rows after the last block: not sealed yet, so not covered. */
  unsealedRows: number;
  last?: LedgerDigest;
  problem?: Problem;
}

const ROWS_PER_PAGE = 10_000;
const BLOCKS_PER_PAGE = 1_000;

interface BlockRow {
  block_number: string | number;
  first_id: string | number;
  last_id: string | number;
  row_count: number | string;
  merkle_root: string;
  previous_hash: string;
  hash: string;
  seal: string;
  sealed_at: string;
}

interface EntryRow {
  transaction_id: string | number;
  block_number: string | number;
  position: number | string;
  leaf_hash: string;
}

/** Pages through a keyset-ordered query, one row at a time. */
class Cursor<T> {
  private page: T[] = [];
  private index = 0;
  private done = false;

  constructor(
    private readonly fetch: (after: T | undefined) => Promise<T[]>,
    private readonly size: number,
  ) {}

  async peek(): Promise<T | undefined> {
    if (this.index < this.page.length) return this.page[this.index];
    if (this.done) return undefined;
    const last = this.page[this.page.length - 1];
    this.page = await this.fetch(last);
    this.index = 0;
    if (this.page.length < this.size) this.done = true;
    return this.page[0];
  }

  async next(): Promise<T | undefined> {
    const item = await this.peek();
    if (item !== undefined) this.index += 1;
    return item;
  }
}

class Tampered extends Error {
  constructor(readonly problem: Problem) {
    super(problem.message);
  }
}

/**
 * Recomputes the whole ledger from the database, in one read-only snapshot: every row against its
 * entry, every block's entries against its Merkle root, every header against its hash, the chain,
 * every seal under the ledger key, and the chain against each digest kept outside. Streams in
 * pages, so memory stays flat whatever the size. Stops at the first mismatch, in block order.
 */
export async function verifyLedger(
  runner: QueryRunner,
  key: Buffer,
  {
    digests = [],
    onProgress,
  }: {
    digests?: readonly LedgerDigest[];
    onProgress?: (report: VerifyReport) => void;
  } = {},
): Promise<VerifyReport> {
  const report: VerifyReport = {
    clean: true,
    blocks: 0,
    sealedRows: 0,
    unsealedRows: 0,
  };
  const byBlock = new Map<number, LedgerDigest[]>();
  for (const digest of digests) {
    byBlock.set(digest.block, [...(byBlock.get(digest.block) ?? []), digest]);
  }
  const blocks = new Cursor<BlockRow>(
    (after) =>
      runner.query(
        `SELECT block_number, first_id, last_id, row_count, merkle_root, previous_hash, hash, seal, sealed_at
         FROM ledger_blocks WHERE block_number > ? ORDER BY block_number LIMIT ${BLOCKS_PER_PAGE}`,
        [after ? String(after.block_number) : '0'],
      ),
    BLOCKS_PER_PAGE,
  );
  // By transaction id, the primary key: a sealed ledger's entries run in the same order as its
  // blocks and positions, and a keyset on the key stays one index range per page on both
  // databases (an OR over block and position made SQLite scan the table for every page).
  const entries = new Cursor<EntryRow>(
    (after) =>
      runner.query(
        `SELECT transaction_id, block_number, position, leaf_hash FROM ledger_entries
         WHERE transaction_id > ? ORDER BY transaction_id LIMIT ${ROWS_PER_PAGE}`,
        [after ? String(after.transaction_id) : '0'],
      ),
    ROWS_PER_PAGE,
  );
  const rows = new Cursor<TransactionRow>(
    (after) =>
      runner.query(
        `${SELECT_ROWS} WHERE id > ? ORDER BY id LIMIT ${ROWS_PER_PAGE}`,
        [after ? String(after.id) : '0'],
      ),
    ROWS_PER_PAGE,
  );

  let previousHash = GENESIS_HASH;
  let previousLast = 0n;
  try {
    for (let expected = 1; ; expected += 1) {
      const block = await blocks.next();
      if (!block) break;
      const number = Number(block.block_number);
      if (number !== expected) {
        throw new Tampered({
          kind: 'block-missing',
          block: expected,
          message: `block ${expected} is missing (the next block is ${number})`,
        });
      }
      const header = {
        number,
        firstId: String(block.first_id),
        lastId: String(block.last_id),
        rowCount: Number(block.row_count),
        merkleRoot: block.merkle_root,
        previousHash: block.previous_hash,
        sealedAt: block.sealed_at,
      };
      if (blockHash(header) !== block.hash) {
        throw new Tampered({
          kind: 'block-edited',
          block: number,
          message: `block ${number} was edited: its columns do not match its hash`,
        });
      }
      if (block.previous_hash !== previousHash) {
        throw new Tampered({
          kind: 'chain-broken',
          block: number,
          message: `block ${number} does not chain to block ${number - 1}: history before it was rewritten`,
        });
      }
      if (!sealMatches(key, block.hash, block.seal)) {
        throw new Tampered({
          kind: 'seal-invalid',
          block: number,
          message: `block ${number} is not sealed by the ledger key: rewritten by someone without it (or PAI_LEDGER_KEY is not the key it was sealed with)`,
        });
      }
      for (const digest of byBlock.get(number) ?? []) {
        if (digest.hash !== block.hash) {
          throw new Tampered({
            kind: 'digest-mismatch',
            block: number,
            message: `block ${number} differs from the digest kept of it: history was rewritten after the digest`,
          });
        }
      }
      byBlock.delete(number);

      const sealed: EntryRow[] = [];
      while (true) {
        const entry = await entries.peek();
        if (!entry || Number(entry.block_number) > number) break;
        await entries.next();
        if (Number(entry.block_number) < number) {
          // An entry moved to an earlier block, or out of its block's id order.
          throw new Tampered({
            kind: 'entries-edited',
            block: Number(entry.block_number),
            message: `the entries of block ${Number(entry.block_number)} were edited: transaction ${String(entry.transaction_id)} is out of place`,
          });
        }
        sealed.push(entry);
      }
      const leaves = sealed.map((entry) => entry.leaf_hash);
      const positionsOk = sealed.every(
        (entry, index) => Number(entry.position) === index,
      );
      if (
        !positionsOk ||
        sealed.length !== header.rowCount ||
        merkleRoot(leaves.length ? leaves : [GENESIS_HASH]) !==
          header.merkleRoot
      ) {
        throw new Tampered({
          kind: 'entries-edited',
          block: number,
          message: `the entries of block ${number} do not match its Merkle root: they were edited`,
        });
      }

      const last = BigInt(header.lastId);
      const inRange: TransactionRow[] = [];
      while (true) {
        const row = await rows.peek();
        if (!row || BigInt(String(row.id)) > last) break;
        await rows.next();
        inRange.push(row);
      }
      compareRows(number, inRange, sealed, previousLast);

      previousHash = block.hash;
      previousLast = last;
      report.blocks += 1;
      report.sealedRows += sealed.length;
      report.last = {
        block: number,
        hash: block.hash,
        sealedAt: block.sealed_at,
      };
      onProgress?.(report);
    }
    const orphan = await entries.peek();
    if (orphan) {
      const number = Number(orphan.block_number);
      throw new Tampered({
        kind: 'block-missing',
        block: number,
        message: `block ${number} is missing: entries sealed into it remain (transaction ${String(orphan.transaction_id)})`,
      });
    }
    for (const [number] of byBlock) {
      throw new Tampered({
        kind: 'digest-missing',
        block: number,
        message: `block ${number}, of which a digest was kept, is not in the database: history was cut short after the digest`,
      });
    }
    while (await rows.next()) report.unsealedRows += 1;
  } catch (error) {
    if (!(error instanceof Tampered)) throw error;
    return { ...report, clean: false, problem: error.problem };
  }
  return report;
}

/**
 * verifyLedger in one read-only snapshot of `dataSource`: blocks sealed while it runs are simply
 * not looked at. SQLite's transaction is a snapshot as it is (WAL); MySQL's at REPEATABLE READ.
 */
export async function verifyDatabase(
  dataSource: DataSource,
  key: Buffer,
  options: Parameters<typeof verifyLedger>[2] = {},
): Promise<VerifyReport> {
  const runner = dataSource.createQueryRunner();
  try {
    await runner.startTransaction(
      dataSource.options.type === 'mysql' ? 'REPEATABLE READ' : undefined,
    );
    try {
      return await verifyLedger(runner, key, options);
    } finally {
      await runner.rollbackTransaction();
    }
  } finally {
    await runner.release();
  }
}

/** Rows of one block's id range against its entries, in id order; throws the first mismatch. */
function compareRows(
  block: number,
  rows: readonly TransactionRow[],
  entries: readonly EntryRow[],
  after: bigint,
): void {
  const views = rows.map(viewOf);
  const entryById = new Map(
    entries.map((entry) => [String(entry.transaction_id), entry]),
  );
  const rowIds = new Set(views.map((view) => view.id));
  const ids = [...new Set([...rowIds, ...entryById.keys()])].sort((a, b) =>
    BigInt(a) < BigInt(b) ? -1 : BigInt(a) > BigInt(b) ? 1 : 0,
  );
  const viewById = new Map(views.map((view) => [view.id, view]));
  for (const id of ids) {
    const view = viewById.get(id);
    const entry = entryById.get(id);
    if (!entry || BigInt(id) <= after) {
      throw new Tampered({
        kind: 'row-inserted',
        block,
        transactionId: id,
        message: `transaction ${id} was inserted into sealed block ${block}: it is not one of the block's rows`,
      });
    }
    if (!view) {
      throw new Tampered({
        kind: 'row-deleted',
        block,
        transactionId: id,
        message: `transaction ${id}, sealed in block ${block}, was deleted`,
      });
    }
    if (leafHash(view) === entry.leaf_hash) continue;
    // Two rows whose contents were exchanged each hash as the other once given its id back.
    for (const other of views) {
      const otherEntry = entryById.get(other.id);
      if (other.id === id || !otherEntry) continue;
      if (
        leafHash({ ...view, id: other.id }) === otherEntry.leaf_hash &&
        leafHash({ ...other, id }) === entry.leaf_hash
      ) {
        throw new Tampered({
          kind: 'rows-swapped',
          block,
          transactionId: id,
          message: `transactions ${id} and ${other.id} of block ${block} were swapped`,
        });
      }
    }
    throw new Tampered({
      kind: 'row-edited',
      block,
      transactionId: id,
      message: `transaction ${id} of block ${block} was edited (its user, amount, reference, description or time): it does not match its sealed hash`,
    });
  }
}
