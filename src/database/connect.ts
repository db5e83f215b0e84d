import { Logger } from '@nestjs/common';
import { DataSource, type DataSourceOptions } from 'typeorm';
import { describeUnavailable, isDatabaseUnavailable } from './database-errors';
import { runMigrationsExclusively } from './migrate';
import { waitUntilUp } from '../common/wait-until-up';

const logger = new Logger('Database');

/**
 * Connects and applies pending migrations (on both databases, one instance at a time; the schema
 * is never synchronized). An unreachable MySQL server is waited for (waitUntilUp); anything else,
 * and any failure of the embedded database, fails at once.
 */
export function connectWithRetry(
  options: DataSourceOptions,
  sleep?: (ms: number) => Promise<unknown>,
): Promise<DataSource> {
  return waitUntilUp(
    {
      name: 'database',
      logger,
      isTransient: (error) =>
        options.type === 'mysql' && isDatabaseUnavailable(error),
      describe: describeUnavailable,
    },
    async () => {
      const dataSource = new DataSource(options);
      try {
        await dataSource.initialize();
        await runMigrationsExclusively(dataSource);
        return dataSource;
      } catch (error) {
        if (dataSource.isInitialized) {
          await dataSource.destroy().catch(() => undefined);
        }
        throw error;
      }
    },
    sleep,
  );
}
