/**
 * What only a real process shows: SIGTERM and the exit status, kill -9 in the middle of a write
 * load, and a start while the database is down. The service runs as a child process from the
 * TypeScript sources, exactly as `npm start` runs it.
 */
import { createPaiClient } from '@pai/client/client/pai-client.module';
import type { PaiClient } from '@pai/client/client/pai-client';
import { PaiClientError } from '@pai/client/client/pai-client.error';
import {
  killServiceProcess,
  serviceEnv,
  startServiceProcess,
  type ServiceProcess,
} from '../support/service-process';
import { RawClient, signEnvelope } from '../support/raw-client';
import { signUp } from '../support/accounts';
import { countOf, verify, waitUntilSealed } from '../support/ledger';
import { TcpProxy, viaProxy } from '../support/tcp-proxy';
import { itIf } from '../support/skip';
import { TEST_KEYS, describeTcpOnly } from '../support/test-app';
import { databaseKind } from '../support/test-database';
import { useTestDatabase } from '../support/use-test-app';
import { waitFor } from '../support/wait-for';

jest.setTimeout(120_000);

const describeSuite = describeTcpOnly(
  'runs the built service as a process on its TCP port',
);

describeSuite(`the service as a process (${databaseKind})`, () => {
  let service: ServiceProcess | undefined;
  const clients: PaiClient[] = [];

  // Before the database fixture's own hook: the process is gone before its database is dropped.
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((client) => client.close()));
    await killServiceProcess(service);
    service = undefined;
  });
  const database = useTestDatabase();

  /** The HTTP side port a process reports it listens on. */
  function sidePortOf(process: ServiceProcess): number {
    const http = /health and metrics on http:\/\/[^\s:]+:(\d+)/.exec(
      process.output(),
    );
    if (!http) throw new Error(`no HTTP side port in:\n${process.output()}`);
    return Number(http[1]);
  }

  function clientOf(port: number): PaiClient {
    const client = createPaiClient({
      host: '127.0.0.1',
      port,
      kid: 'default',
      secret: TEST_KEYS.default,
      timeoutMs: 30_000,
    });
    clients.push(client);
    return client;
  }

  /** Ids of every transaction stored, read through a fresh in-process app on the same database. */
  async function storedIds(): Promise<Set<string>> {
    const reader = await database.start();
    try {
      const rows: { id: unknown }[] = await reader.dataSource.query(
        'SELECT id FROM transacciones',
      );
      return new Set(rows.map((row) => String(row.id)));
    } finally {
      await reader.close();
    }
  }

  it('should answer every request in flight on SIGTERM, then exit 0', async () => {
    // The production bcrypt cost: each registration keeps a thread-pool thread busy for
    // hundreds of milliseconds, so all sixteen are still running when the signal arrives.
    service = await startServiceProcess(
      serviceEnv(database(), {
        PAI_BCRYPT_COST: '12',
        PAI_DRAIN_TIMEOUT_MS: '60000',
        // The side port, to see when the registrations are in flight.
        PAI_HTTP_HOST: '127.0.0.1',
        PAI_HTTP_PORT: '0',
      }),
    );
    const metrics = `http://127.0.0.1:${sidePortOf(service)}/metrics`;
    const client = clientOf(service.port);
    await client.send('system.ping', {});
    const registrations = Array.from({ length: 16 }, (_, n) =>
      client
        .send('auth.register', {
          username: `sigterm${n}`,
          password: 'correct horse',
        })
        .then(
          () => 'ok',
          (error: PaiClientError) => error.code,
        ),
    );
    await waitFor('all sixteen registrations in flight', async () => {
      const text = await (await fetch(metrics)).text();
      return Number(/^pai_requests_in_flight (\d+)$/m.exec(text)?.[1]) >= 16;
    });
    service.child.kill('SIGTERM');

    expect(await Promise.all(registrations)).toEqual(Array(16).fill('ok'));
    expect(await service.exited).toEqual({ code: 0, signal: null });
    // Most were still running: a stop that cut them off would have lost their replies.
    const drained = /stopped in (\d+) ms: all (\d+) request/.exec(
      service.output(),
    );
    expect(Number(drained?.[2])).toBeGreaterThanOrEqual(8);
  });

  it('should have written the line of every request it answered when it stops on SIGTERM', async () => {
    // The log is written asynchronously (src/observability/logger.ts): what is still queued at
    // the stop must be flushed, not dropped.
    service = await startServiceProcess(
      serviceEnv(database(), { PAI_LOG_LEVEL: 'info', PAI_LOG_FORMAT: 'json' }),
    );
    const raw = await RawClient.connect(service.port);
    const requests = 3_000;
    let answered = 0;
    try {
      for (let sent = 0; sent < requests; sent += 200) {
        const replies = await Promise.all(
          Array.from({ length: 200 }, () =>
            raw.request(
              'system.ping',
              signEnvelope('system.ping', {}, TEST_KEYS.default),
            ),
          ),
        );
        answered += replies.filter((reply) => reply.ok).length;
      }
    } finally {
      raw.close();
    }
    service.child.kill('SIGTERM');
    expect(await service.exited).toEqual({ code: 0, signal: null });

    const pingLines = service
      .output()
      .split('\n')
      .filter((line) => line.includes('"pattern":"system.ping"'));
    expect(answered).toBe(requests);
    expect(pingLines).toHaveLength(requests);
  });

  it('should keep every acknowledged transaction, and seal each once, through kill -9 in the middle of a write load', async () => {
    service = await startServiceProcess(serviceEnv(database()));
    const client = clientOf(service.port);
    const token = await signUp(client, 'kill9');
    const acknowledged: string[] = [];
    let stop = false;
    const writer = async (n: number) => {
      for (let i = 0; !stop; i += 1) {
        try {
          const { transaction } = await client.send('transactions.create', {
            token,
            amount: `${n}.${String(i % 100).padStart(2, '0')}`,
          });
          acknowledged.push(transaction.id);
        } catch {
          return; // the connection died with the process
        }
      }
    };
    const writers = Array.from({ length: 8 }, (_, n) => writer(n + 1));
    await waitFor(
      '200 acknowledged transactions',
      () => acknowledged.length >= 200,
      { timeoutMs: 60_000, intervalMs: 5 },
    );
    service.child.kill('SIGKILL');
    stop = true;
    await service.exited;
    await Promise.all(writers);

    const stored = await storedIds();
    const lost = acknowledged.filter((id) => !stored.has(id));
    expect(acknowledged.length).toBeGreaterThanOrEqual(200);
    expect(lost).toEqual([]);
    // Committed but unacknowledged (the reply died with the process): at most one per writer.
    expect(stored.size - acknowledged.length).toBeLessThanOrEqual(8);

    // And it starts again on what the crash left behind.
    service = await startServiceProcess(serviceEnv(database()));
    const after = clientOf(service.port);
    const { items } = await after.send('transactions.list', {
      token,
      limit: 1,
    });
    expect(items).toHaveLength(1);

    // Sealing ran all along (every 50 ms, 200 ms behind the writes), so the kill fell between
    // or inside blocks: what was sealed is whole, nothing is sealed twice, and the rest is
    // sealed after the restart, by whichever instance holds the lease.
    const reader = await database.start();
    try {
      await waitUntilSealed(reader.dataSource);
      expect(await verify(reader.dataSource)).toMatchObject({
        clean: true,
        sealedRows: stored.size,
        unsealedRows: 0,
      });
      expect(await countOf(reader.dataSource, 'ledger_entries')).toBe(
        stored.size,
      );
    } finally {
      await reader.close();
    }
  });

  it('should refuse after a crash a message it accepted before', async () => {
    service = await startServiceProcess(serviceEnv(database()));
    const envelope = signEnvelope('system.ping', {}, TEST_KEYS.default);
    let raw = await RawClient.connect(service.port);
    expect((await raw.request('system.ping', envelope)).ok).toBe(true);
    raw.close();
    service.child.kill('SIGKILL');
    await service.exited;

    service = await startServiceProcess(serviceEnv(database()));
    raw = await RawClient.connect(service.port);
    try {
      const reply = await raw.request('system.ping', envelope);
      expect(reply.ok).toBe(false);
      // The database record (MySQL's default) still holds the nonce: REPLAY. The in-memory one
      // (SQLite's) died with the process, and the new process refuses everything dated before
      // its start: STALE.
      expect(reply.error?.code).toBe(
        database().config.type === 'mysql' ? 'REPLAY' : 'STALE',
      );
    } finally {
      raw.close();
    }
  });

  itIf(
    databaseKind === 'mysql',
    'MySQL only: the embedded SQLite database is in the process itself',
  )(
    'should wait for a database that is down at start, with backoff, and say so',
    async () => {
      const { config } = database();
      if (config.type !== 'mysql') throw new Error('MySQL only');
      const target = new URL(config.url);
      const proxy = await TcpProxy.start({
        host: target.hostname,
        port: Number(target.port || 3306),
      });
      await proxy.down();
      try {
        let retriesSeen = 0;
        const starting = startServiceProcess(
          serviceEnv(database(), {
            DATABASE_URL: viaProxy(config.url, proxy),
          }),
          {
            onOutput: (text) => {
              retriesSeen = text.match(/database unreachable/g)?.length ?? 0;
            },
          },
        );
        await waitFor(
          'three attempts to reach the database',
          () => retriesSeen >= 3,
          {
            timeoutMs: 30_000,
            intervalMs: 50,
          },
        );
        await proxy.up();
        service = await starting;
        const output = service.output();
        expect(output).toMatch(/attempt 1; retrying in 500 ms/);
        expect(output).toMatch(/attempt 2; retrying in 1000 ms/);
        expect(output).toMatch(/attempt 3; retrying in 2000 ms/);
        expect(output).toMatch(/connected after \d+ attempts/);
        // The URL (and any password in it) never reaches the log.
        expect(output).not.toContain(String(proxy.port));
        const client = clientOf(service.port);
        await signUp(client, 'late');
      } finally {
        await proxy.close();
      }
    },
  );
});
