import type { Logger } from 'pino';
import type { Logger as TypeOrmLogger } from 'typeorm';

const CONTEXT = { context: 'TypeORM' };

/**
 * TypeORM's messages as JSON lines through the service's logger, instead of its console output.
 * Queries are never logged, failed ones included: their parameters hold password hashes and
 * token hashes, and a failure reaches the exception filter, which logs it without them.
 */
export class TypeOrmPinoLogger implements TypeOrmLogger {
  constructor(private readonly logger: Logger) {}

  logQuery(): void {}

  logQueryError(): void {}

  logQuerySlow(time: number): void {
    this.logger.warn({ ...CONTEXT, durationMs: time }, 'slow query');
  }

  logSchemaBuild(message: string): void {
    this.logger.debug(CONTEXT, message);
  }

  logMigration(message: string): void {
    this.logger.info(CONTEXT, message);
  }

  log(level: 'log' | 'info' | 'warn', message: unknown): void {
    const text = typeof message === 'string' ? message : String(message);
    // 'info' carries the migrations run at start, worth a line in production.
    if (level === 'warn') this.logger.warn(CONTEXT, text);
    else if (level === 'info') this.logger.info(CONTEXT, text);
    else this.logger.debug(CONTEXT, text);
  }
}
