import type { TestingModuleBuilder } from '@nestjs/testing';
import type { TestOverrides } from './config';
import { startTestApp, type TestApp } from './test-app';
import { createTestDatabase, type TestDatabase } from './test-database';

type Customize = (builder: TestingModuleBuilder) => TestingModuleBuilder;

/**
 * How long a fixture lives: `test`, a fresh one for each test of the describe block it is called
 * in (beforeEach/afterEach); `block`, one for the whole block (beforeAll/afterAll), for suites
 * whose tests share one app (a long fuzz run, a service the CLI processes talk to).
 */
export type Lifetime = 'test' | 'block';

export interface TestDatabaseFixture {
  /** The database of the running test (or block). */
  (): TestDatabase;
  /** Starts an app on that database; it is closed afterwards, with the database dropped. */
  start(overrides?: TestOverrides, customize?: Customize): Promise<TestApp>;
}

export interface TestAppFixture {
  /** The app of the running test: the one started before it, or the last restart's. */
  (): TestApp;
  /** Its database. */
  database: TestDatabaseFixture;
  /**
   * Closes the app and starts another on the same database, as a restart of the service would,
   * with `overrides` over the fixture's own settings.
   */
  restart(overrides?: TestOverrides, customize?: Customize): Promise<TestApp>;
}

function hooks(lifetime: Lifetime) {
  return lifetime === 'test'
    ? { before: beforeEach, after: afterEach }
    : { before: beforeAll, after: afterAll };
}

/**
 * A fresh database (SQLite, or one of its own on DATABASE_URL's server) for each test, dropped
 * after it, together with every app the test started on it.
 */
export function useTestDatabase(
  lifetime: Lifetime = 'test',
): TestDatabaseFixture {
  const { before, after } = hooks(lifetime);
  let database: TestDatabase | undefined;
  const started: TestApp[] = [];

  before(async () => {
    database = await createTestDatabase();
  });
  after(async () => {
    try {
      await Promise.all(started.splice(0).map((app) => app.close()));
    } finally {
      await database?.drop();
      database = undefined;
    }
  });

  const fixture = (): TestDatabase => {
    if (!database) throw new Error('the test database exists only in a test');
    return database;
  };
  fixture.start = async (
    overrides: TestOverrides = {},
    customize?: Customize,
  ): Promise<TestApp> => {
    const app = await startTestApp(fixture(), overrides, customize);
    started.push(app);
    return app;
  };
  return fixture;
}

/**
 * The app of each test (startTestApp, with `overrides`) on a fresh database, both gone after it:
 * `const service = useTestApp();` in a describe block, then `service()` in its tests.
 */
export function useTestApp(
  overrides: TestOverrides = {},
  {
    lifetime = 'test',
    customize,
  }: { lifetime?: Lifetime; customize?: Customize } = {},
): TestAppFixture {
  const database = useTestDatabase(lifetime);
  let app: TestApp | undefined;

  const { before, after } = hooks(lifetime);
  before(async () => {
    app = await database.start(overrides, customize);
  });
  after(() => {
    app = undefined;
  });

  const fixture = (): TestApp => {
    if (!app) throw new Error('the test app exists only in a test');
    return app;
  };
  fixture.database = database;
  fixture.restart = async (
    restartOverrides: TestOverrides = {},
    restartCustomize?: Customize,
  ): Promise<TestApp> => {
    await app?.close();
    app = await database.start(
      { ...overrides, ...restartOverrides },
      restartCustomize,
    );
    return app;
  };
  return fixture;
}
