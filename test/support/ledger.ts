import { DataSource } from 'typeorm';
import { dataSourceOptions } from '../../ormconfig';
import type { DatabaseConfig } from '../../src/config/database-config';
import { sealOf } from '../../src/ledger/seal';
import { verifyDatabase, type VerifyReport } from '../../src/ledger/verify';
import {
  blockHash,
  GENESIS_HASH,
  leafHash,
  merkleRoot,
  type LedgerDigest,
} from '@pai/client/protocol/receipt';
import { Transaction } from '../../src/transactions/transaction.entity';
import { toView } from '../../src/transactions/transaction-view';
import { TEST_LEDGER_KEY } from './test-keys';
import { waitFor } from './wait-for';

/** Rows of a table, counted. */
export async function countOf(
  dataSource: DataSource,
  table: string,
): Promise<number> {
  const [row] = await dataSource.query<{ n: number | string }[]>(
    `SELECT COUNT(*) AS n FROM ${table}`,
  );
  return Number(row.n);
}

/** Resolves once every transaction stored is sealed. */
export async function waitUntilSealed(dataSource: DataSource): Promise<void> {
  let seen = '';
  await waitFor(
    () => `every transaction sealed (${seen})`,
    async () => {
      const rows = await countOf(dataSource, 'transacciones');
      const entries = await countOf(dataSource, 'ledger_entries');
      seen = `${entries} of ${rows}`;
      return rows > 0 && rows === entries;
    },
    { timeoutMs: 30_000 },
  );
}

/** A connection of the test's own to a database, as an operator's tool would open it. */
export async function openDatabase(
  config: DatabaseConfig,
): Promise<DataSource> {
  const dataSource = new DataSource({
    ...dataSourceOptions(config),
    logging: false,
  });
  return dataSource.initialize();
}

/** The whole ledger verified, as `pai-server ledger verify` does it. */
export function verify(
  dataSource: DataSource,
  digests: LedgerDigest[] = [],
  key = TEST_LEDGER_KEY,
): Promise<VerifyReport> {
  return verifyDatabase(dataSource, key, { digests });
}

/**
 * Recomputes every block from the rows as they are now, entries, roots, hashes, chain and (given
 * `key`) seals: what someone who rewrites history would do. Without the key the seals stay.
 */
export async function rewriteHistory(
  dataSource: DataSource,
  key?: Buffer,
): Promise<void> {
  const blocks = await dataSource.query<
    {
      block_number: number | string;
      last_id: number | string;
      sealed_at: string;
      seal: string;
    }[]
  >(
    'SELECT block_number, last_id, sealed_at, seal FROM ledger_blocks ORDER BY block_number',
  );
  let previousHash = GENESIS_HASH;
  let after = '0';
  for (const block of blocks) {
    const rows = await dataSource
      .createQueryBuilder(Transaction, 't')
      .where('t.id > :after AND t.id <= :last', {
        after,
        last: String(block.last_id),
      })
      .orderBy('t.id', 'ASC')
      .getMany();
    const leaves = rows.map((row) => leafHash(toView(row)));
    for (const [position, row] of rows.entries()) {
      await dataSource.query(
        'UPDATE ledger_entries SET leaf_hash = ? WHERE transaction_id = ?',
        [leaves[position], String(row.id)],
      );
    }
    const header = {
      number: Number(block.block_number),
      firstId: String(rows[0].id),
      lastId: String(block.last_id),
      rowCount: rows.length,
      merkleRoot: merkleRoot(leaves),
      previousHash,
      sealedAt: block.sealed_at,
    };
    const hash = blockHash(header);
    await dataSource.query(
      'UPDATE ledger_blocks SET merkle_root = ?, previous_hash = ?, hash = ?, seal = ? WHERE block_number = ?',
      [
        header.merkleRoot,
        previousHash,
        hash,
        key ? sealOf(key, hash) : block.seal,
        String(block.block_number),
      ],
    );
    previousHash = hash;
    after = String(block.last_id);
  }
}
