import { parseDatabaseConfig } from '../../src/config/database-config';
import type { PaiClient } from '@pai/client/client/pai-client';
import { PaiClientError } from '@pai/client/client/pai-client.error';
import { signUp } from '../support/accounts';
import { TcpProxy, viaProxy } from '../support/tcp-proxy';
import { describeIf } from '../support/skip';
import type { TestApp } from '../support/test-app';
import { databaseKind } from '../support/test-database';
import { useTestDatabase } from '../support/use-test-app';
import { waitFor } from '../support/wait-for';

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
const onMySql = describeIf(
  databaseKind === 'mysql',
  'MySQL only: the embedded SQLite database cannot go away while its process runs',
);

onMySql(`database outage (${databaseKind})`, () => {
  let proxy: TcpProxy;
  let service: TestApp;
  let client: PaiClient;
  let token: string;

  const create = (amount: string) =>
    client.send('transactions.create', { token, amount });

  // Before the database fixture's own hook: the service stops with its database reachable.
  afterEach(async () => {
    await proxy.up();
  });
  const database = useTestDatabase();
  afterEach(async () => {
    await proxy.close();
  });

  beforeEach(async () => {
    const { config } = database();
    if (config.type !== 'mysql') throw new Error('MySQL only');
    const target = new URL(config.url);
    proxy = await TcpProxy.start({
      host: target.hostname,
      port: Number(target.port || 3306),
    });
    service = await database.start({
      database: parseDatabaseConfig({
        DATABASE_URL: viaProxy(config.url, proxy),
      }),
      databaseTimeoutMs: DATABASE_TIMEOUT_MS,
    });
    client = service.client({ timeoutMs: 30_000 });
    token = await signUp(client, 'outage');
    expect(await outcome(create('1.00'))).toBe('ok');
  });

  /** Retries a write until one succeeds again (failing after `limitMs`). */
  async function recovery(limitMs: number): Promise<void> {
    await waitFor(
      'a write to succeed again',
      async () => (await outcome(create('2.00'))) === 'ok',
      { timeoutMs: limitMs, intervalMs: 100 },
    );
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
