import type { DataSource } from 'typeorm';
import { Database } from '../../src/database/database.service';
import { nestLog } from '../support/nest-log';
import { signEnvelope } from '../support/raw-client';
import { TEST_KEYS, e2eTransport, signedFor } from '../support/test-app';
import { databaseKind } from '../support/test-database';
import { useTestDatabase } from '../support/use-test-app';

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
  const database = useTestDatabase();

  async function startWith(error: Error) {
    // The nonce is recorded in the (failing) database, as every instance sharing MySQL does.
    const service = await database.start(
      { nonceRecord: { kind: 'database' } },
      (builder) =>
        builder.overrideProvider(Database).useValue(failingDatabase(error)),
    );
    return service.raw();
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
    // The operator's log says which dependency and the driver's code, not its message.
    const warned = nestLog.lines('warn', 'ProtocolExceptionFilter');
    expect(warned).toEqual([
      expect.stringMatching(/^database unavailable \(ECONNREFUSED\)/),
    ]);
    expect(warned.join('\n')).not.toContain('10.0.0.5');
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
    // The detail is the operator's, in the log, under the id the client was given.
    expect(nestLog.lines('error', 'ProtocolExceptionFilter')).toEqual([
      expect.stringContaining(`unexpected error ${reply.error?.errorId}`),
    ]);
  });
});
