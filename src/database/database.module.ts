import { Global, Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { dataSourceOptions } from '../../ormconfig';
import { APP_CONFIG, type AppConfig } from '../config/config';
import { Database } from './database.service';

@Global()
@Module({
  imports: [
    TypeOrmModule.forRootAsync({
      inject: [APP_CONFIG],
      useFactory: (config: AppConfig) => {
        if (config.database.type === 'sqlite') {
          mkdirSync(dirname(config.database.file), {
            recursive: true,
            mode: 0o700,
          });
        }
        // Pending migrations are applied at start, on both databases; schema is never synchronized.
        return { ...dataSourceOptions(config.database), migrationsRun: true };
      },
    }),
  ],
  providers: [Database],
  exports: [Database],
})
export class DatabaseModule {}
