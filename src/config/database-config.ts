import { join } from 'node:path';
import { parseDataDir } from '@pai/client/config/defaults';
import { ConfigError } from '@pai/client/config/config.error';
import { envOrFile, integer } from './environment';
import type { Env } from './variables';

export type DatabaseConfig =
  | { type: 'mysql'; url: string; database: string; poolSize: number }
  | { type: 'sqlite'; file: string };

export const SQLITE_FILE_NAME = 'pai.sqlite';

/**
 * Parsed on its own (not only inside loadConfig) because the TypeORM CLI's DataSource needs the
 * database and nothing else: running a migration must not require the MAC keys.
 */
export function parseDatabaseConfig(env: Env): DatabaseConfig {
  const raw = envOrFile(env, 'DATABASE_URL');
  if (raw === undefined || raw === '') {
    return { type: 'sqlite', file: join(parseDataDir(env), SQLITE_FILE_NAME) };
  }
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    // The value may hold a password: never echo it.
    throw new ConfigError(
      'DATABASE_URL',
      'is not a URL (expected mysql://user:pass@host:port/db)',
    );
  }
  if (url.protocol !== 'mysql:' && url.protocol !== 'mariadb:') {
    throw new ConfigError(
      'DATABASE_URL',
      `scheme must be mysql:// or mariadb://, not ${url.protocol}//`,
    );
  }
  const database = decodeURIComponent(url.pathname.replace(/^\//, ''));
  if (!/^[A-Za-z0-9_$]{1,64}$/.test(database)) {
    throw new ConfigError(
      'DATABASE_URL',
      'must name a database (mysql://user:pass@host:port/db)',
    );
  }
  if (url.hostname === '') {
    throw new ConfigError('DATABASE_URL', 'must name a host');
  }
  // mysql2 only understands mysql://
  url.protocol = 'mysql:';
  return {
    type: 'mysql',
    url: url.toString(),
    database,
    poolSize: integer(env, 'PAI_DB_POOL_SIZE'),
  };
}
