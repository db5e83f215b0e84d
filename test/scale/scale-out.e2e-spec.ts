/**
 * Several instances on one MySQL database behind HAProxy (deploy/haproxy.cfg, the shipped file):
 * replay protection, sessions and login throttling hold across instances, and kill -9 of one
 * instance under a write load loses no acknowledged transaction while the client module carries
 * on through the balancer. Real processes: three services from the TypeScript sources, and
 * Debian's haproxy. MySQL only: SQLite is the single-instance database.
 *
 * `npm run test:scale` (CI) requires HAProxy and MySQL and fails without them; elsewhere the suite
 * is skipped, and says why (the skip reporter lists it).
 */
import { createConnection } from 'mysql2/promise';
import { randomBytes, randomUUID } from 'node:crypto';
import { FREE_FAILURES } from '../../src/auth/login-throttle.service';
import { createPaiClient } from '@pai/client/client/pai-client.module';
import type {
  PaiClient,
  PaiClientOptions,
} from '@pai/client/client/pai-client';
import { PaiClientError } from '@pai/client/client/pai-client.error';
import { signUp, TEST_PASSWORD } from '../support/accounts';
import {
  HAPROXY_BIN,
  haproxyInstalled,
  startHaproxy,
  type Haproxy,
} from '../support/haproxy';
import { RawClient, signEnvelope, type WireReply } from '../support/raw-client';
import { report } from '../support/report';
import { describeIf } from '../support/skip';
import {
  killServiceProcess,
  serviceEnv,
  startServiceProcess,
  type ServiceProcess,
} from '../support/service-process';
import { TEST_KEYS, signedFor } from '../support/test-app';
import {
  createTestDatabase,
  databaseKind,
  type TestDatabase,
} from '../support/test-database';
import { waitFor } from '../support/wait-for';

/**
 * The nonce records shared by every instance. Each entry runs the whole suite with
 * PAI_NONCE_STORE set to it; every instance also gets the Redis record's settings (the test Redis,
 * a key prefix of the suite's own), which the other records ignore.
 * PAI_SCALE_OUT_NONCE_STORES=memory shows the suite failing on a record each instance keeps for
 * itself.
 */
const NONCE_STORES: string[] = process.env.PAI_SCALE_OUT_NONCE_STORES?.split(
  ',',
) ?? ['database', 'redis'];

const INSTANCES = 3;
const REQUIRED = process.env.PAI_SCALE_OUT_REQUIRED === '1';

jest.setTimeout(180_000);

interface Instance {
  name: string;
  service: ServiceProcess;
  port: number;
  httpPort: number;
}

const missing =
  databaseKind !== 'mysql'
    ? 'MySQL (DATABASE_URL): several instances share a MySQL database'
    : !haproxyInstalled
      ? `HAProxy (${HAPROXY_BIN}): install Debian's package, apt-get install haproxy`
      : undefined;

if (missing && REQUIRED) {
  describe('several instances behind HAProxy', () => {
    it('should have what it needs (PAI_SCALE_OUT_REQUIRED=1)', () => {
      throw new Error(`the scale-out suite needs ${missing}`);
    });
  });
} else if (missing) {
  describeIf(false, `needs ${missing}`)(
    'several instances behind HAProxy',
    () => {
      it('runs with npm run test:scale', () => undefined);
    },
  );
} else {
  describe.each(NONCE_STORES)(
    'several instances behind HAProxy, nonce record %s',
    (nonceStore) => scaleOutSuite(nonceStore),
  );
}

function scaleOutSuite(nonceStore: string): void {
  let database: TestDatabase;
  let instances: Instance[] = [];
  let haproxy: Haproxy;
  const clients: PaiClient[] = [];
  const raws: RawClient[] = [];
  /** Every process started in beforeAll, even when another failed to start. */
  let afterAllKill: ServiceProcess[] = [];

  /** One instance's environment: the same database, keys and nonce record as all the others. */
  let instanceEnv: (extra: Record<string, string>) => NodeJS.ProcessEnv;

  beforeAll(async () => {
    database = await createTestDatabase();
    const shared = {
      PAI_NONCE_STORE: nonceStore,
      PAI_REDIS_URL:
        process.env.PAI_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379/0',
      PAI_REDIS_PREFIX: `pai-test:${randomBytes(6).toString('hex')}:`,
      PAI_HTTP_HOST: '127.0.0.1',
      // As deploy/haproxy.cfg asks: HAProxy caps per client address, each instance sees one.
      PAI_MAX_CONNECTIONS_PER_ADDRESS: '0',
    };
    instanceEnv = (extra) => serviceEnv(database, { ...shared, ...extra });
    // Together, as a deployment starts them: the migration lock lets one migrate the others wait.
    const started: ServiceProcess[] = [];
    afterAllKill = started;
    instances = await Promise.all(
      Array.from({ length: INSTANCES }, async (_, index) => {
        const service = await startServiceProcess(
          instanceEnv({ PAI_HTTP_PORT: '0' }),
        );
        started.push(service);
        const http = /health and metrics on http:\/\/[^\s:]+:(\d+)/.exec(
          service.output(),
        );
        if (!http) throw new Error(`no HTTP port:\n${service.output()}`);
        return {
          name: `pai_${index + 1}`,
          service,
          port: service.port,
          httpPort: Number(http[1]),
        };
      }),
    );
    haproxy = await startHaproxy(
      instances.map((instance) => ({
        addr: `127.0.0.1:${instance.port}`,
        checkPort: instance.httpPort,
      })),
    );
  });

  afterEach(async () => {
    await Promise.all(clients.splice(0).map((client) => client.close()));
    raws.splice(0).forEach((raw) => raw.close());
  });

  afterAll(async () => {
    await haproxy?.stop();
    await Promise.all(
      [...afterAllKill, ...instances.map(({ service }) => service)].map(
        (service) => killServiceProcess(service),
      ),
    );
    await database?.drop();
  });

  function clientOf(port: number, options: Partial<PaiClientOptions> = {}) {
    const client = createPaiClient({
      host: '127.0.0.1',
      port,
      kid: 'default',
      secret: TEST_KEYS.default,
      timeoutMs: 30_000,
      ...options,
    });
    clients.push(client);
    return client;
  }

  async function rawTo(port: number): Promise<RawClient> {
    const raw = await RawClient.connect(port);
    raws.push(raw);
    return raw;
  }

  async function codeOf(call: Promise<unknown>): Promise<string> {
    try {
      await call;
      return 'OK';
    } catch (error) {
      if (error instanceof PaiClientError) return error.code;
      throw error;
    }
  }

  /** A counter's value on one instance, from its /metrics. */
  async function counter(
    instance: Instance,
    name: string,
    labels: string,
  ): Promise<number> {
    const response = await fetch(
      `http://127.0.0.1:${instance.httpPort}/metrics`,
    );
    const line = (await response.text())
      .split('\n')
      .find((text) => text.startsWith(`${name}{${labels}} `));
    return line ? Number(line.split(' ')[1]) : 0;
  }

  /** Pings each instance answered and refused as REPLAY so far. */
  async function pingCounts(): Promise<{ ok: number; replay: number }[]> {
    return Promise.all(
      instances.map(async (instance) => ({
        ok: await counter(
          instance,
          'pai_requests_total',
          'pattern="system.ping",code="OK"',
        ),
        replay: await counter(
          instance,
          'pai_rejections_total',
          'reason="REPLAY"',
        ),
      })),
    );
  }

  function verified(
    reply: WireReply,
    envelope: { kid: string; nonce: string; mac: string },
  ) {
    expect(signedFor(reply, 'system.ping', envelope)).toBe(true);
    return reply;
  }

  it('should refuse on every other instance a message one instance accepted', async () => {
    const envelope = signEnvelope('system.ping', {}, TEST_KEYS.default);
    const id = randomUUID();
    const [first, ...others] = instances;

    const accepted = await (
      await rawTo(first.port)
    ).request('system.ping', envelope, id);
    expect(verified(accepted, envelope).ok).toBe(true);

    // The same bytes, frame id included, straight to each other instance, then via HAProxy.
    for (const port of [...others.map((other) => other.port), haproxy.port]) {
      const reply = await (
        await rawTo(port)
      ).request('system.ping', envelope, id);
      expect(verified(reply, envelope).error?.code).toBe('REPLAY');
    }
  });

  it('should accept exactly one of the copies of a message sent at once to all instances through HAProxy', async () => {
    const copies = 3 * INSTANCES;
    // leastconn gives each new connection to the instance holding the fewest: 3 apiece.
    const connections = await Promise.all(
      Array.from({ length: copies }, () => rawTo(haproxy.port)),
    );
    const rounds = 100;
    const before = await pingCounts();
    for (let round = 0; round < rounds; round += 1) {
      const envelope = signEnvelope('system.ping', {}, TEST_KEYS.default);
      const id = randomUUID();
      const replies = await Promise.all(
        connections.map((raw) => raw.request('system.ping', envelope, id)),
      );
      const codes = replies.map(
        (reply) => verified(reply, envelope).error?.code ?? 'OK',
      );
      expect(codes.sort()).toEqual([
        'OK',
        ...Array<string>(copies - 1).fill('REPLAY'),
      ]);
    }
    const after = await pingCounts();

    // The copies really were spread: every instance judged some of them, and between them all
    // accepted one per round.
    const judged = after.map(
      (counts, n) =>
        counts.ok - before[n].ok + counts.replay - before[n].replay,
    );
    expect(judged.reduce((a, b) => a + b)).toBe(copies * rounds);
    for (const count of judged) expect(count).toBeGreaterThanOrEqual(rounds);
    expect(
      after.reduce((sum, counts, n) => sum + counts.ok - before[n].ok, 0),
    ).toBe(rounds);
  });

  it('should honour a session made on one instance on the others and through HAProxy, and its logout everywhere', async () => {
    const [a, b, c] = instances.map((instance) => clientOf(instance.port));
    const balanced = clientOf(haproxy.port);
    const token = await signUp(a, `roam-${nonceStore}`);

    await expect(b.send('users.me', { token })).resolves.toMatchObject({
      username: `roam-${nonceStore}`,
    });
    const { transaction } = await c.send('transactions.create', {
      token,
      amount: '12.50',
      reference: 'roam-1',
    });
    await expect(
      balanced.send('transactions.list', { token }),
    ).resolves.toMatchObject({ items: [{ id: transaction.id }] });
    await expect(
      a.send('transactions.create', {
        token,
        amount: '12.50',
        reference: 'roam-1',
      }),
    ).resolves.toEqual({ transaction, created: false });

    await expect(b.send('auth.logout', { token })).resolves.toEqual({
      revoked: true,
    });
    for (const client of [a, c, balanced]) {
      expect(await codeOf(client.send('users.me', { token }))).toBe(
        'UNAUTHENTICATED',
      );
    }
  });

  it('should count failed logins across instances as one instance does', async () => {
    const byInstance = instances.map((instance) => clientOf(instance.port));
    const username = `throttled-${nonceStore}`;
    await byInstance[0].send('auth.register', {
      username,
      password: TEST_PASSWORD,
    });
    const login = (n: number, password: string) =>
      codeOf(
        byInstance[n % INSTANCES].send('auth.login', { username, password }),
      );

    for (let n = 0; n < FREE_FAILURES; n += 1) {
      expect(await login(n, `wrong-${n}-password`)).toBe('INVALID_CREDENTIALS');
    }
    // Each instance saw at most two of those five: only a shared count locks the name now,
    // on every instance, even for the right password.
    for (let n = 0; n < INSTANCES; n += 1) {
      expect(await login(n, TEST_PASSWORD)).toBe('RATE_LIMITED');
    }
  });

  it('should limit the connections one client address holds, at the balancer', async () => {
    const limit = 4;
    const limited = await startHaproxy(
      instances.map((instance) => ({
        addr: `127.0.0.1:${instance.port}`,
        checkPort: instance.httpPort,
      })),
      { PAI_HAPROXY_MAX_CONN_PER_SOURCE: String(limit) },
    );
    try {
      /** 'OK' when a signed ping is answered on a new connection, 'cut' when HAProxy drops it. */
      const attempt = async () => {
        // HAProxy accepts, then resets: the reset shows at connect, at write or as a close.
        try {
          const raw = await rawTo(limited.port);
          const envelope = signEnvelope('system.ping', {}, TEST_KEYS.default);
          return await Promise.race([
            raw
              .request('system.ping', envelope)
              .then((reply) => (reply.ok ? 'OK' : String(reply.error?.code))),
            raw.closed.then(() => 'cut'),
          ]);
        } catch {
          return 'cut';
        }
      };
      const held: string[] = [];
      for (let n = 0; n < limit; n += 1) held.push(await attempt());
      expect(held).toEqual(Array(limit).fill('OK'));
      expect(await attempt()).toBe('cut');

      raws.shift()?.close(); // one of the four held
      await limited.waitFor(
        (servers) => servers.reduce((sum, s) => sum + s.current, 0) < limit,
        'seen the connection close',
      );
      expect(await attempt()).toBe('OK');
    } finally {
      await limited.stop();
    }
  });

  /**
   * Writers (one client, so one connection, each: leastconn spreads them over the instances)
   * record transactions with unique references through HAProxy; `disrupt` runs once 150 are
   * acknowledged, and the load goes on until every writer has had some acknowledged after it.
   * Then every acknowledged transaction must be stored, once, with the id it was acknowledged
   * with, and nothing else may be: no writer may have failed.
   */
  async function underWriteLoad(
    username: string,
    victim: Instance,
    disrupt: () => Promise<void>,
  ) {
    const token = await signUp(clientOf(haproxy.port), username);
    const writers = 2 * INSTANCES;
    const writerClients = Array.from({ length: writers }, () =>
      clientOf(haproxy.port),
    );
    await Promise.all(
      writerClients.map((client) => client.send('system.ping', {})),
    );
    const pinned = (await haproxy.servers()).find(
      (server) => server.name === victim.name,
    );
    expect(pinned?.current).toBeGreaterThanOrEqual(1);

    const acknowledged = new Map<string, string>(); // reference -> transaction id
    const ackedAfter = new Array<number>(writers).fill(0);
    const foundCommitted: string[] = [];
    const failures: string[] = [];
    let disrupted = false;
    let stop = false;
    const write = async (n: number) => {
      for (let i = 0; !stop; i += 1) {
        const reference = `w${n}-${i}`;
        try {
          const { transaction, created } = await writerClients[n].send(
            'transactions.create',
            {
              token,
              amount: `${n + 1}.${String(i % 100).padStart(2, '0')}`,
              reference,
            },
          );
          // A repeat after the connection broke found the commit its first try made.
          if (!created) foundCommitted.push(reference);
          acknowledged.set(reference, transaction.id);
          if (disrupted) ackedAfter[n] += 1;
        } catch (error) {
          failures.push(
            `${reference}: ${error instanceof PaiClientError ? error.code : String(error)}`,
          );
          return;
        }
      }
    };
    /** Until `done`, or until a writer failed (the assertions below say which). */
    const until = (what: string, done: () => boolean) =>
      waitFor(what, () => done() || failures.length > 0, {
        timeoutMs: 60_000,
        intervalMs: 5,
      });
    const load = Array.from({ length: writers }, (_, n) => write(n));
    await until('150 acknowledged writes', () => acknowledged.size >= 150);
    await disrupt();
    disrupted = true;
    const ackedBefore = acknowledged.size;
    await until(
      '150 more acknowledged writes, some from every writer',
      () =>
        acknowledged.size >= ackedBefore + 150 &&
        ackedAfter.every((count) => count > 0),
    );
    stop = true;
    await Promise.all(load);

    // Every writer carried on, those whose connection went with the instance included.
    expect(failures).toEqual([]);
    expect(ackedAfter.every((count) => count > 0)).toBe(true);

    const connection = await createConnection({
      uri: (database.config as { url: string }).url,
    });
    let rows: { id: number | string; reference: string }[];
    try {
      [rows] = (await connection.query(
        'SELECT t.id, t.referencia AS reference FROM transacciones t JOIN usuarios u ON u.id = t.usuario_id WHERE u.nombre_usuario = ?',
        [username],
      )) as unknown as [{ id: number | string; reference: string }[]];
    } finally {
      await connection.end();
    }
    const stored = new Map(rows.map((row) => [row.reference, String(row.id)]));
    expect(rows.length).toBe(stored.size);
    expect(stored).toEqual(acknowledged);

    report(
      `${username}: ${acknowledged.size} acknowledged, ${ackedBefore} before the disruption, ` +
        `${foundCommitted.length} found committed by a repeat`,
    );
    return { token, stored, writerClients };
  }

  it('should lose no acknowledged transaction when one instance is killed under a write load, and carry on through HAProxy', async () => {
    const victim = instances[1];
    const { token, stored, writerClients } = await underWriteLoad(
      `killed-${nonceStore}`,
      victim,
      async () => {
        victim.service.child.kill('SIGKILL');
        await victim.service.exited;
      },
    );

    // HAProxy's health check marks the dead instance down; the balancer keeps serving on the rest.
    await haproxy.waitFor(
      (servers) =>
        servers.find((server) => server.name === victim.name)?.status ===
        'DOWN',
      'marked the killed instance down',
    );
    const fresh = clientOf(haproxy.port);
    await expect(fresh.send('users.me', { token })).resolves.toMatchObject({
      transactionCount: stored.size,
    });
    await expect(
      writerClients[0].send('transactions.list', { token, limit: 1 }),
    ).resolves.toMatchObject({ items: [{}] });
  });

  it('should give new connections to an instance that comes back, before the others', async () => {
    // The one the previous test killed; run alone, this test kills one itself.
    let index = instances.findIndex(
      ({ service }) =>
        service.child.exitCode !== null || service.child.signalCode,
    );
    if (index < 0) {
      index = 1;
      await killServiceProcess(instances[index].service);
      await haproxy.waitFor(
        (servers) => servers[index].status === 'DOWN',
        'marked the killed instance down',
      );
    }
    const back = instances[index];
    // Clients connected meanwhile: two on each instance still up (once HAProxy has seen the
    // previous test's clients go, leastconn splits four evenly).
    await haproxy.waitFor(
      (servers) => servers.every((server) => server.current === 0),
      'seen the earlier connections close',
    );
    const held = Array.from({ length: 4 }, () => clientOf(haproxy.port));
    await Promise.all(held.map((client) => client.send('system.ping', {})));

    // Where HAProxy expects it: the same protocol and health ports.
    back.service = await startServiceProcess(
      instanceEnv({
        PAI_PORT: String(back.port),
        PAI_HTTP_PORT: String(back.httpPort),
      }),
    );
    await haproxy.waitFor(
      (servers) => servers.every((server) => server.status === 'UP'),
      'marked the instance up again',
    );

    // leastconn: it holds no connection, the others two each, so the next two are its own.
    const before = await pingCounts();
    for (let n = 0; n < 2; n += 1) {
      await clientOf(haproxy.port).send('system.ping', {});
    }
    const after = await pingCounts();
    expect(after.map((counts, n) => counts.ok - before[n].ok)).toEqual(
      instances.map((_, n) => (n === index ? 2 : 0)),
    );
  });

  it('should carry on through a rolling restart: SIGTERM drains one instance under a write load', async () => {
    const victim = instances[2];
    let exit: { code: number | null; signal: string | null } | undefined;
    await underWriteLoad(`restarted-${nonceStore}`, victim, async () => {
      victim.service.child.kill('SIGTERM');
      exit = await victim.service.exited;
    });
    // A drain, not a crash: requests in flight finished and replied before it exited.
    expect(exit).toEqual({ code: 0, signal: null });
    expect(victim.service.output()).not.toMatch(/cut off at the drain timeout/);

    victim.service = await startServiceProcess(
      instanceEnv({
        PAI_PORT: String(victim.port),
        PAI_HTTP_PORT: String(victim.httpPort),
      }),
    );
    await haproxy.waitFor(
      (servers) =>
        servers.every(
          (server) => server.status === 'UP' && server.checkStatus === 'L7OK',
        ),
      'marked the restarted instance up',
    );
  });
}
