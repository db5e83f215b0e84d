import { DataSource } from 'typeorm';

const LOCK_NAME = 'pai_migrations';
const LOCK_TIMEOUT_S = 120;

/**
 * Applies pending migrations, one instance at a time. Several instances starting together on one
 * empty MySQL database would otherwise all find the same migrations pending and all but one fail
 * on "table already exists". A named lock (GET_LOCK) makes the others wait, then find nothing to
 * do. SQLite is the embedded database of a single process: several instances share MySQL.
 */
export async function runMigrationsExclusively(
  dataSource: DataSource,
): Promise<void> {
  if (dataSource.options.type !== 'mysql') {
    await dataSource.runMigrations({ transaction: 'each' });
    return;
  }
  // GET_LOCK belongs to a connection: hold one for the whole run.
  const runner = dataSource.createQueryRunner();
  await runner.connect();
  try {
    const [row] = (await runner.query('SELECT GET_LOCK(?, ?) AS acquired', [
      LOCK_NAME,
      LOCK_TIMEOUT_S,
    ])) as { acquired: number | string | null }[];
    if (Number(row?.acquired) !== 1) {
      throw new Error(
        `could not take the migration lock within ${LOCK_TIMEOUT_S} s`,
      );
    }
    try {
      await dataSource.runMigrations({ transaction: 'each' });
    } finally {
      await runner.query('SELECT RELEASE_LOCK(?)', [LOCK_NAME]);
    }
  } finally {
    await runner.release();
  }
}
