import { DataSource } from 'typeorm';
import { dataSourceOptions } from '../ormconfig';
import {
  createTestDatabase,
  databaseKind,
  type TestDatabase,
} from './support/test-database';

const TABLES = [
  'usuarios',
  'transacciones',
  'sesiones',
  'intentos_login',
  'nonces_usados',
];

describe(`migrations (${databaseKind})`, () => {
  let database: TestDatabase;
  let dataSource: DataSource;

  beforeEach(async () => {
    database = await createTestDatabase();
    if (database.config.type === 'sqlite') {
      const { mkdirSync } = await import('node:fs');
      const { dirname } = await import('node:path');
      mkdirSync(dirname(database.config.file), { recursive: true });
    }
    // The same options object the service and the TypeORM CLI use.
    dataSource = new DataSource(dataSourceOptions(database.config));
    await dataSource.initialize();
  });

  afterEach(async () => {
    await dataSource.destroy();
    await database.drop();
  });

  async function tables(): Promise<string[]> {
    const runner = dataSource.createQueryRunner();
    try {
      const found = await Promise.all(
        TABLES.map((name) => runner.hasTable(name)),
      );
      return TABLES.filter((_, index) => found[index]);
    } finally {
      await runner.release();
    }
  }

  it('should create the schema, drop it again with down(), and create it again', async () => {
    expect(await dataSource.showMigrations()).toBe(true);
    await dataSource.runMigrations({ transaction: 'each' });
    expect(await tables()).toEqual(TABLES);
    expect(await dataSource.showMigrations()).toBe(false);

    await dataSource.undoLastMigration({ transaction: 'each' });
    expect(await tables()).toEqual([]);

    await dataSource.runMigrations({ transaction: 'each' });
    expect(await tables()).toEqual(TABLES);
  });

  it('should keep the original column names of usuarios and transacciones', async () => {
    await dataSource.runMigrations();
    const runner = dataSource.createQueryRunner();
    try {
      const users = await runner.getTable('usuarios');
      const transactions = await runner.getTable('transacciones');
      expect(users?.columns.map((column) => column.name)).toEqual(
        expect.arrayContaining(['id', 'nombre_usuario', 'clave']),
      );
      expect(transactions?.columns.map((column) => column.name)).toEqual(
        expect.arrayContaining(['id', 'usuario_id', 'cantidad']),
      );
    } finally {
      await runner.release();
    }
  });
});
