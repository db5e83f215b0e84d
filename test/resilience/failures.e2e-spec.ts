import type { DataSource } from 'typeorm';
import { Database } from '../../src/database/database.service';
import {
  TEST_KEYS,
  e2eTransport,
  startTestApp,
  type TestApp,
  signedFor,
} from '../support/test-app';
import {
  createTestDatabase,
  databaseKind,
  type TestDatabase,
} from '../support/test-database';
import { signEnvelope, type RawTransport } from '../support/raw-client';

/**
 * The service's own Database, on a connection whose every statement fails with `error`, as a
 * database that went away would: what the service makes of the driver's error is under test.
 */
function failingDatabase(error: Error): Database {
  // Thrown where the driver would fail, inside the unit of work, so that nothing is left
  // rejected and unawaited (a query builder's chain, say).
  const fail = () => {
    throw error;
  };
  const manager = new Proxy({}, { get: () => fail });
  const dataSource = {
    options: { type: 'better-sqlite3' },
    manager,
    transaction: fail,
  } as unknown as DataSource;
  return new Database(dataSource, { databaseTimeoutMs: 5_000 });
}

describe(`failures reaching the client (${databaseKind}, ${e2eTransport})`, () => {
  let database: TestDatabase;
  let service: TestApp | undefined;
  let raw: RawTransport | undefined;

  beforeEach(async () => {
    database = await createTestDatabase();
  });

  afterEach(async () => {
    raw?.close();
    await service?.close();
    await database.drop();
  });

  async function startWith(error: Error) {
    // The nonce is recorded in the (failing) database, as every instance sharing MySQL does.
    service = await startTestApp(
      database,
      { nonceRecord: { kind: 'database' } },
      (builder) =>
        builder.overrideProvider(Database).useValue(failingDatabase(error)),
    );
    raw = await service.raw();
    return raw;
  }

  it('should answer UNAVAILABLE, signed, when the database cannot be reached', async () => {
    const client = await startWith(
      Object.assign(new Error('connect ECONNREFUSED 10.0.0.5:3306'), {
        code: 'ECONNREFUSED',
      }),
    );
    const envelope = signEnvelope('system.ping', {}, TEST_KEYS.default);
    const reply = await client.request('system.ping', envelope);
    expect(reply.error?.code).toBe('UNAVAILABLE');
    expect(JSON.stringify(reply)).not.toContain('10.0.0.5');
    expect(signedFor(reply, 'system.ping', envelope)).toBe(true);
  });

  it('should answer INTERNAL with only an error id, never the internals', async () => {
    const secret = 'SELECT clave FROM usuarios -- /srv/pai/src/secret.ts:42';
    const client = await startWith(new Error(secret));
    const envelope = signEnvelope('system.ping', {}, TEST_KEYS.default);
    const reply = await client.request('system.ping', envelope);
    expect(reply.error?.code).toBe('INTERNAL');
    expect(reply.error?.errorId).toMatch(/^[0-9a-f-]{36}$/);
    expect(Object.keys(reply.error ?? {}).sort()).toEqual([
      'code',
      'errorId',
      'message',
    ]);
    const text = JSON.stringify(reply);
    expect(text).not.toContain('SELECT');
    expect(text).not.toContain('secret.ts');
    expect(signedFor(reply, 'system.ping', envelope)).toBe(true);
  });
});
