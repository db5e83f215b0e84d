import { createHmac, timingSafeEqual } from 'node:crypto';
import type { EntityManager } from 'typeorm';

/** The operator's seal over a block hash: HMAC-SHA256 under PAI_LEDGER_KEY, hex. */
export function sealOf(key: Buffer, hash: string): string {
  return createHmac('sha256', key).update(hash).digest('hex');
}

export function sealMatches(key: Buffer, hash: string, seal: string): boolean {
  const expected = Buffer.from(sealOf(key, hash), 'hex');
  const given = Buffer.from(seal, 'hex');
  return given.length === expected.length && timingSafeEqual(given, expected);
}

/**
 * The database's clock, in ms since the epoch: every instance judges a row's age and the lease's
 * expiry by the same clock, whatever its own says.
 */
export async function databaseNow(
  manager: EntityManager,
  dialect: 'mysql' | 'sqlite',
): Promise<number> {
  const sql =
    dialect === 'mysql'
      ? 'SELECT ROUND(UNIX_TIMESTAMP(NOW(3)) * 1000) AS now'
      : "SELECT CAST(ROUND((julianday('now') - 2440587.5) * 86400000) AS INTEGER) AS now";
  const [row] = await manager.query<{ now: number | string }[]>(sql);
  return Number(row.now);
}
