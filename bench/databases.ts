import { createPool, type Pool } from 'mysql2/promise';
import {
  createTestDatabase,
  type TestDatabase,
} from '../test/support/test-database';

export type MysqlServer =
  | {
      available: true;
      /** A database of the bench's own (`pai_bench_…`), dropped by drop(). */
      database: TestDatabase;
      /** A mysql2 pool on that database for the raw baselines, with the service's settings. */
      pool(connectionLimit: number): Pool;
      drop(): Promise<void>;
    }
  | { available: false; reason: string };

/**
 * A fresh database on the MySQL/MariaDB server DATABASE_URL names, or on the machine's MariaDB at
 * root@127.0.0.1:3306 if it answers.
 */
export async function mysqlServer(): Promise<MysqlServer> {
  let database: TestDatabase;
  try {
    database = await createTestDatabase({
      serverUrl: process.env.DATABASE_URL || 'mysql://root@127.0.0.1:3306/',
      namePrefix: 'pai_bench_',
    });
  } catch (error) {
    return {
      available: false,
      reason: error instanceof Error ? error.message : String(error),
    };
  }
  const { config } = database;
  if (config.type !== 'mysql') throw new Error('expected a MySQL database');
  return {
    available: true,
    database,
    pool: (connectionLimit) =>
      createPool({
        uri: config.url,
        connectionLimit,
        supportBigNumbers: true,
        bigNumberStrings: true,
        timezone: 'Z',
      }),
    drop: () => database.drop(),
  };
}

/** The embedded database: an SQLite file in a directory of its own. */
export const sqliteDatabase = () => createTestDatabase({ serverUrl: '' });
