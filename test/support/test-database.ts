import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createConnection } from 'mysql2/promise';
import {
  parseDatabaseConfig,
  type DatabaseConfig,
} from '../../src/config/database-config';

export interface TestDatabase {
  config: DatabaseConfig;
  /** A directory of its own for the suite (SQLite file, generated secrets). */
  dataDir: string;
  drop(): Promise<void>;
}

/**
 * One fresh database per suite: an SQLite file in a temporary directory, or, when DATABASE_URL
 * names a MySQL/MariaDB server, a new database on that server (dropped afterwards), so suites
 * can run in parallel and every run starts empty. `serverUrl` names the server instead of
 * DATABASE_URL ('' for SQLite), `namePrefix` starts the new database's name.
 */
export async function createTestDatabase({
  serverUrl = process.env.DATABASE_URL,
  namePrefix = 'pai_e2e_',
}: { serverUrl?: string; namePrefix?: string } = {}): Promise<TestDatabase> {
  const dataDir = mkdtempSync(join(tmpdir(), 'pai-e2e-'));
  const removeDir = () => rmSync(dataDir, { recursive: true, force: true });
  if (!serverUrl) {
    return {
      config: parseDatabaseConfig({ PAI_DATA_DIR: dataDir }),
      dataDir,
      drop: () => Promise.resolve(removeDir()),
    };
  }
  const url = new URL(serverUrl);
  const name = `${namePrefix}${randomBytes(6).toString('hex')}`;
  const admin = async (sql: string) => {
    const connection = await createConnection({
      host: url.hostname,
      port: Number(url.port || 3306),
      user: decodeURIComponent(url.username),
      password: decodeURIComponent(url.password),
    });
    try {
      await connection.query(sql);
    } finally {
      await connection.end();
    }
  };
  try {
    await admin(
      `CREATE DATABASE \`${name}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci`,
    );
  } catch (error) {
    removeDir();
    throw error;
  }
  url.pathname = `/${name}`;
  return {
    config: parseDatabaseConfig({ DATABASE_URL: url.toString() }),
    dataDir,
    drop: async () => {
      await admin(`DROP DATABASE IF EXISTS \`${name}\``);
      removeDir();
    },
  };
}

export const databaseKind = process.env.DATABASE_URL ? 'mysql' : 'sqlite';
