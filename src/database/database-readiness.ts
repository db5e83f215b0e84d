import { Injectable, OnModuleInit } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { Health } from '../observability/health';
import { Database } from './database.service';

/** The database's part of readiness: it answers, and every migration this build knows is applied. */
@Injectable()
export class DatabaseReadiness implements OnModuleInit {
  constructor(
    private readonly database: Database,
    private readonly dataSource: DataSource,
    private readonly health: Health,
  ) {}

  onModuleInit(): void {
    this.health.register('database', async () => {
      await this.database.run((manager) => manager.query('SELECT 1'));
    });
    this.health.register('migrations', async () => {
      const pending = await this.pendingMigrations();
      if (pending.length > 0) throw new Error(`pending: ${pending.join(', ')}`);
    });
  }

  /** The migrations this build knows that the database's migrations table does not list. */
  async pendingMigrations(): Promise<string[]> {
    const table = this.dataSource.driver.escape(
      this.dataSource.options.migrationsTableName ?? 'migrations',
    );
    const rows = await this.database.run((manager) =>
      manager.query<{ name: string }[]>(`SELECT name FROM ${table}`),
    );
    const applied = new Set(rows.map((row) => row.name));
    return this.dataSource.migrations
      .map((migration) => migration.name ?? migration.constructor.name)
      .filter((name) => !applied.has(name));
  }
}
