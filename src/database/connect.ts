import { Logger } from '@nestjs/common';
import { DataSource, type DataSourceOptions } from 'typeorm';
import { describeUnavailable, isDatabaseUnavailable } from './database-errors';
import { runMigrationsExclusively } from './migrate';

const FIRST_RETRY_MS = 500;
const MAX_RETRY_MS = 30_000;
const logger = new Logger('Database');

/**
 * Connects and applies pending migrations (on both databases, one instance at a time; the schema
 * is never synchronized). A MySQL server that is not up yet (the service and its database started
 * together, or the database restarting) is waited for, with exponential backoff and a log line per
 * attempt, for as long as it takes: an orchestrator's health check, not a crash loop, decides
 * when that is too long. Anything else (bad credentials, unknown database) fails at once.
 */
export async function connectWithRetry(
  options: DataSourceOptions,
  sleep: (ms: number) => Promise<unknown> = (ms) =>
    new Promise((resolve) => setTimeout(resolve, ms)),
): Promise<DataSource> {
  for (let attempt = 1; ; attempt += 1) {
    const dataSource = new DataSource(options);
    try {
      await dataSource.initialize();
      await runMigrationsExclusively(dataSource);
      if (attempt > 1) logger.log(`connected after ${attempt} attempts`);
      return dataSource;
    } catch (error) {
      if (dataSource.isInitialized) {
        await dataSource.destroy().catch(() => undefined);
      }
      if (options.type !== 'mysql' || !isDatabaseUnavailable(error))
        throw error;
      const delay = Math.min(MAX_RETRY_MS, FIRST_RETRY_MS * 2 ** (attempt - 1));
      logger.warn(
        `database unreachable (${describeUnavailable(error)}), attempt ${attempt}; retrying in ${delay} ms`,
      );
      await sleep(delay);
    }
  }
}
