import type { DataSource } from 'typeorm';

/**
 * The (kid, nonce) pairs in the `nonces_usados` table, or null when the record is not kept there
 * (no such table, or an empty one on SQLite where the record may live in memory): the suites then
 * judge the record by behaviour alone.
 */
export async function tableNonces(
  dataSource: DataSource,
  databaseKind: string,
): Promise<{ kid: string; nonce: string }[] | null> {
  let rows: { kid: string; nonce: string }[];
  try {
    rows = await dataSource.query('SELECT kid, nonce FROM nonces_usados');
  } catch {
    return null;
  }
  return rows.length > 0 || databaseKind === 'mysql' ? rows : null;
}
