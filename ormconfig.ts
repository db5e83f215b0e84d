import { DataSource, DataSourceOptions, LoggerOptions } from 'typeorm';
import {
  DatabaseConfig,
  parseDatabaseConfig,
} from './src/config/database-config';
import { LedgerBlock } from './src/ledger/ledger-block.entity';
import { LedgerEntry } from './src/ledger/ledger-entry.entity';
import { LedgerLease } from './src/ledger/ledger-lease.entity';
import { LoginThrottle } from './src/auth/login-throttle.entity';
import { UsedNonce } from './src/nonce-record/used-nonce.entity';
import { Session } from './src/sessions/session.entity';
import { Transaction } from './src/transactions/transaction.entity';
import { User } from './src/users/user.entity';
import { migrations } from './src/database/migrations';

const entities: DataSourceOptions['entities'] = [
  User,
  Transaction,
  Session,
  LoginThrottle,
  UsedNonce,
  LedgerBlock,
  LedgerEntry,
  LedgerLease,
];

/**
 * The one TypeORM options object: the service builds its connection from it, and the default
 * export below hands it to the TypeORM CLI (`npm run migration:run`, `migration:revert`).
 */
export function dataSourceOptions(database: DatabaseConfig): DataSourceOptions {
  const common = {
    entities,
    migrations,
    synchronize: false,
    migrationsTransactionMode: 'each',
    // Not 'error': TypeORM would log a failed query with its parameters (password hashes,
    // token hashes). Failures reach the exception filter, which logs them without parameters.
    logging: ['warn', 'migration'] as LoggerOptions,
  } as const;
  if (database.type === 'mysql') {
    return {
      ...common,
      type: 'mysql',
      url: database.url,
      charset: 'utf8mb4_bin',
      // Store and read DATETIME as UTC, whatever the server's or the machine's zone.
      timezone: 'Z',
      // BIGINT ids and DECIMAL amounts and sums reach the code as exact strings.
      supportBigNumbers: true,
      bigNumberStrings: true,
      connectTimeout: 10_000,
      // The create path sends a batch's statements as one script (src/transactions/
      // transaction-writer.ts); every value in it is a bound parameter.
      multipleStatements: true,
      poolSize: database.poolSize,
    };
  }
  return {
    ...common,
    type: 'better-sqlite3',
    database: database.file,
    // WAL with synchronous=FULL: a transaction that returned has reached the disk, so nothing
    // acknowledged is lost to a crash or a power cut; readers never block the writer.
    enableWAL: true,
    timeout: 5_000,
    prepareDatabase: (db: { pragma(source: string): unknown }) => {
      db.pragma('synchronous = FULL');
    },
  };
}

export default new DataSource(
  dataSourceOptions(parseDatabaseConfig(process.env)),
);
