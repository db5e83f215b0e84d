import { DynamicModule, Global, Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import type { DataSourceOptions } from 'typeorm';
import { APP_CONFIG, type AppConfig } from '../config/config';
import type { DatabaseConfig } from '../config/database-config';
import { LOGGER } from '../observability/logger';
import { TypeOrmPinoLogger } from './typeorm-pino-logger';
import type { Logger } from 'pino';
import { connectWithRetry } from './connect';
import { Database } from './database.service';
import { DatabaseReadiness } from './database-readiness';
import { prepareSqliteFile } from './sqlite-file';

/**
 * The database connection, on the one TypeORM options object (`ormconfig.ts`), which the
 * composition root hands in: the entities it lists belong to the feature rooms, which depend on
 * this one, not the reverse.
 */
@Global()
@Module({})
export class DatabaseModule {
  static forRoot(
    optionsFor: (database: DatabaseConfig) => DataSourceOptions,
  ): DynamicModule {
    return {
      module: DatabaseModule,
      imports: [
        TypeOrmModule.forRootAsync({
          inject: [APP_CONFIG, LOGGER],
          useFactory: (config: AppConfig, logger: Logger) => {
            if (config.database.type === 'sqlite') {
              // Before TypeORM, whose own mkdir and open would use the default modes.
              prepareSqliteFile(config.database.file, (message) =>
                logger.warn({ context: 'Database' }, message),
              );
            }
            return {
              ...optionsFor(config.database),
              logger: new TypeOrmPinoLogger(logger),
              // Retries are ours (connectWithRetry): Nest's give up after ten and log a stack each.
              toRetry: () => false,
            };
          },
          dataSourceFactory: (options) => connectWithRetry(options!),
        }),
      ],
      providers: [Database, DatabaseReadiness],
      exports: [Database],
    };
  }
}
