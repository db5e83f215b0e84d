import { Global, Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { dataSourceOptions } from '../../ormconfig';
import { APP_CONFIG, type AppConfig } from '../config/config';
import { LOGGER } from '../observability/logger';
import { TypeOrmPinoLogger } from '../observability/typeorm-logger';
import type { Logger } from 'pino';
import { Database } from './database.service';
import { runMigrationsExclusively } from './migrate';

@Global()
@Module({
  imports: [
    TypeOrmModule.forRootAsync({
      inject: [APP_CONFIG, LOGGER],
      useFactory: (config: AppConfig, logger: Logger) => {
        if (config.database.type === 'sqlite') {
          mkdirSync(dirname(config.database.file), {
            recursive: true,
            mode: 0o700,
          });
        }
        return {
          ...dataSourceOptions(config.database),
          logger: new TypeOrmPinoLogger(logger),
        };
      },
      // Pending migrations are applied at start, on both databases (the schema is never
      // synchronized), one instance at a time.
      dataSourceFactory: async (options) => {
        const dataSource = await new DataSource(options!).initialize();
        await runMigrationsExclusively(dataSource);
        return dataSource;
      },
    }),
  ],
  providers: [Database],
  exports: [Database],
})
export class DatabaseModule {}
