import { DataSource } from 'typeorm';
import { dataSourceOptions } from '../../ormconfig';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { runMigrationsExclusively } from '../../src/database/migrate';
import { migrations } from '../../src/database/migrations';
import { itIf } from '../support/skip';
import { databaseKind, type TestDatabase } from '../support/test-database';
import { useTestDatabase } from '../support/use-test-app';

const TABLES = [
  'usuarios',
  'transacciones',
  'sesiones',
  'intentos_login',
  'nonces_usados',
  'ledger_blocks',
  'ledger_entries',
  'ledger_lease',
];
const LEDGER_TABLES = ['ledger_blocks', 'ledger_entries', 'ledger_lease'];

/** A DataSource on the database, from the options object the service and the TypeORM CLI use. */
function dataSourceOn(database: TestDatabase): DataSource {
  if (database.config.type === 'sqlite') {
    mkdirSync(dirname(database.config.file), { recursive: true });
  }
  return new DataSource(dataSourceOptions(database.config));
}

describe(`migrations (${databaseKind})`, () => {
  let dataSource: DataSource;

  // Before the database fixture's own hook: the connection closes before the database is dropped.
  afterEach(async () => {
    await dataSource.destroy();
  });
  const database = useTestDatabase();

  beforeEach(async () => {
    dataSource = await dataSourceOn(database()).initialize();
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
    expect(await tables()).toEqual(
      TABLES.filter((name) => !LEDGER_TABLES.includes(name)),
    );
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

describe(`${runMigrationsExclusively.name} (${databaseKind})`, () => {
  const database = useTestDatabase();
  // Several instances share MySQL; the embedded SQLite database belongs to one process.
  const onMysql = itIf(
    databaseKind === 'mysql',
    'MySQL only: instances share MySQL; the SQLite file is one process',
  );

  onMysql(
    'should let instances starting together on one empty database all succeed, migrating it once',
    async () => {
      const instances = await Promise.all(
        [1, 2, 3].map(() => dataSourceOn(database()).initialize()),
      );
      try {
        const results = await Promise.allSettled(
          instances.map(runMigrationsExclusively),
        );
        expect(results.map((result) => result.status)).toEqual([
          'fulfilled',
          'fulfilled',
          'fulfilled',
        ]);
        const applied: unknown[] = await instances[0].query(
          'SELECT * FROM migrations',
        );
        expect(applied).toHaveLength(migrations.length);
      } finally {
        await Promise.all(instances.map((instance) => instance.destroy()));
      }
    },
  );
});
