import { Global, Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { dataSourceOptions } from '../../ormconfig';
import { APP_CONFIG, type AppConfig } from '../config/config';
import { LOGGER } from '../observability/logger';
import { TypeOrmPinoLogger } from './typeorm-pino-logger';
import type { Logger } from 'pino';
import { connectWithRetry } from './connect';
import { Database } from './database.service';
import { prepareSqliteFile } from './sqlite-file';

@Global()
@Module({
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
          ...dataSourceOptions(config.database),
          logger: new TypeOrmPinoLogger(logger),
          // Retries are ours (connectWithRetry): Nest's give up after ten and log a stack each.
          toRetry: () => false,
        };
      },
      dataSourceFactory: (options) => connectWithRetry(options!),
    }),
  ],
  providers: [Database],
  exports: [Database],
})
export class DatabaseModule {}
