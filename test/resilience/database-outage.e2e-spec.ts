import { parseDatabaseConfig } from '../../src/config/database-config';
import type { PaiClient } from '../../src/client/pai-client';
import { PaiClientError } from '../../src/client/pai-client.error';
import { signUp } from '../support/accounts';
import { TcpProxy, viaProxy } from '../support/tcp-proxy';
import { startTestApp, type TestApp } from '../support/test-app';
import {
  createTestDatabase,
  databaseKind,
  type TestDatabase,
} from '../support/test-database';

/** The outcome of one call: 'ok', or the error code it failed with. */
async function outcome(call: Promise<unknown>): Promise<string> {
  try {
    await call;
    return 'ok';
  } catch (error) {
    if (error instanceof PaiClientError) return error.code;
    throw error;
  }
}

async function timed<T>(work: Promise<T>): Promise<[T, number]> {
  const started = performance.now();
  const result = await work;
  return [result, performance.now() - started];
}

const DATABASE_TIMEOUT_MS = 1_000;

// The embedded database lives in the service's own process and file: it cannot go away while
// the process runs. A MySQL server can, and this is what the service does then.
const onMySql = databaseKind === 'mysql' ? describe : describe.skip;

onMySql(`database outage (${databaseKind})`, () => {
  let database: TestDatabase;
  let proxy: TcpProxy;
  let service: TestApp;
  let client: PaiClient;
  let token: string;

  const create = (amount: string) =>
    client.send('transactions.create', { token, amount });

  beforeEach(async () => {
    database = await createTestDatabase();
    if (database.config.type !== 'mysql') throw new Error('MySQL only');
    const target = new URL(database.config.url);
    proxy = await TcpProxy.start({
      host: target.hostname,
      port: Number(target.port || 3306),
    });
    service = await startTestApp(database, {
      database: parseDatabaseConfig({
        DATABASE_URL: viaProxy(database.config.url, proxy),
      }),
      databaseTimeoutMs: DATABASE_TIMEOUT_MS,
    });
    client = service.client({ timeoutMs: 30_000 });
    token = await signUp(client, 'outage');
    expect(await outcome(create('1.00'))).toBe('ok');
  });

  afterEach(async () => {
    await proxy.up();
    await service.close();
    await proxy.close();
    await database.drop();
  });

  /** Polls until a write succeeds again; resolves with how long that took. */
  async function recovery(limitMs: number): Promise<number> {
    const started = performance.now();
    while (performance.now() - started < limitMs) {
      if ((await outcome(create('2.00'))) === 'ok') {
        return performance.now() - started;
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new Error(`no recovery within ${limitMs} ms`);
  }

  it('should answer UNAVAILABLE at once while the server is down, then recover by itself', async () => {
    await proxy.down();
    const [results, elapsed] = await timed(
      Promise.all(
        [create('3.00'), client.send('system.ping', {})].map(outcome),
      ),
    );
    expect(results).toEqual(['UNAVAILABLE', 'UNAVAILABLE']);
    expect(elapsed).toBeLessThan(DATABASE_TIMEOUT_MS + 2_000);

    await proxy.up();
    await recovery(15_000);
    const rows: { cantidad: string }[] = await service.dataSource.query(
      'SELECT cantidad FROM transacciones ORDER BY id',
    );
    expect(rows.map((row) => row.cantidad)).toEqual(['1.00', '2.00']);
  });

  it('should answer UNAVAILABLE within the bound while the server says nothing, then recover', async () => {
    proxy.silent();
    const [results, elapsed] = await timed(
      Promise.all(
        [create('3.00'), create('4.00'), client.send('system.ping', {})].map(
          outcome,
        ),
      ),
    );
    expect(results).toEqual(['UNAVAILABLE', 'UNAVAILABLE', 'UNAVAILABLE']);
    // Bounded by PAI_DATABASE_TIMEOUT_MS, not by TCP's minutes of retransmissions.
    expect(elapsed).toBeLessThan(DATABASE_TIMEOUT_MS + 2_000);

    await proxy.up();
    await recovery(15_000);
  });
});
