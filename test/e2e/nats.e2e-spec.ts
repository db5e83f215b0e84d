/**
 * What only the NATS transport has: two instances in one queue group sharing the work and the
 * replay record, one of them stopping under load, readiness from the broker connection, and a
 * broker restart. Runs with PAI_E2E_TRANSPORT=nats (npm run test:nats).
 */
import { gatedDatabase } from '../support/gated-database';
import {
  connect,
  nkeyAuthenticator,
  nkeys,
  type NatsConnection,
  type ConnectionOptions,
} from '@nats-io/transport-node';
import bcrypt from 'bcrypt';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataSource } from 'typeorm';
import type { PaiClient } from '@pai/client/client/pai-client';
import { PaiClientError } from '@pai/client/client/pai-client.error';
import {
  createPaiClient,
  type PaiNatsClientOptions,
} from '@pai/client/client/pai-client.module';
import { parseTransportConfig } from '../../src/config/transport-config';
import { Database } from '../../src/database/database.service';
import { SidePort } from '../../src/observability/side-port';
import { Metrics } from '../../src/observability/metrics';
import type { NatsServer } from '../../src/transport/nats.server';
import { readinessBecomes } from '../support/http-side';
import { TEST_PASSWORD, signUp } from '../support/accounts';
import { signEnvelope } from '../support/raw-client';
import { startNatsBroker, stopNatsBroker } from '../support/nats-broker';
import { nestLog } from '../support/nest-log';
import { freePort } from '../support/ports';
import type { RawNatsClient } from '../support/raw-nats-client';
import { describeIf } from '../support/skip';
import { TEST_KEYS, e2eTransport, type TestApp } from '../support/test-app';
import { databaseKind } from '../support/test-database';
import { useTestDatabase } from '../support/use-test-app';
import { waitFor } from '../support/wait-for';

const key = TEST_KEYS.default;
const http = { host: '127.0.0.1', port: 0 };

const describeNats = describeIf(
  e2eTransport === 'nats',
  'NATS only: npm run test:nats',
);

/** pai_requests_total (or another counter) of one instance, for the given labels. */
async function counter(
  service: TestApp,
  instance: number,
  name: string,
  labels: Record<string, string>,
): Promise<number> {
  const metric = service.apps[instance]
    .get(Metrics)
    .registry.getSingleMetric(name);
  if (!metric) return 0;
  const { values } = await metric.get();
  const found = values.find((value) =>
    Object.entries(labels).every(
      ([label, wanted]) =>
        (value.labels as Record<string, unknown>)[label] === wanted,
    ),
  );
  return found?.value ?? 0;
}

const okPings = (service: TestApp, instance: number) =>
  counter(service, instance, 'pai_requests_total', {
    pattern: 'system.ping',
    code: 'OK',
  });

/** Requests refused by every instance for a reply subject outside the inbox prefix. */
const refusedReplySubjects = (service: TestApp): number =>
  service.servers
    .map((server) => (server as NatsServer).refusals.replySubjects)
    .reduce((sum, count) => sum + count, 0);

describeNats(`two instances over NATS (${databaseKind})`, () => {
  const database = useTestDatabase();
  let service: TestApp;

  it('should share the requests between both instances of the queue group', async () => {
    service = await database.start({ http });
    expect(service.apps).toHaveLength(2);
    const client = service.client();
    for (let sent = 0; sent < 40; sent += 1) {
      await client.send('system.ping', {});
    }
    const handled = [await okPings(service, 0), await okPings(service, 1)];
    // Each request once, by one instance; both took some (all 40 on one: chance 2^-39).
    expect(handled[0] + handled[1]).toBe(40);
    expect(handled[0]).toBeGreaterThan(0);
    expect(handled[1]).toBeGreaterThan(0);
  });

  it('should refuse a replay that lands on the other instance', async () => {
    service = await database.start({ http });
    const raw = await service.raw();
    const envelope = signEnvelope('system.ping', {}, key);
    expect((await raw.request('system.ping', envelope)).ok).toBe(true);
    const accepting = (await okPings(service, 0)) === 1 ? 0 : 1;
    // With the accepting instance stopped, the copy can only go to the other one.
    await service.closeInstance(accepting);
    const replay = await raw.request('system.ping', envelope);
    expect(replay.error?.code).toBe('REPLAY');
    expect(
      await counter(service, 1 - accepting, 'pai_rejections_total', {
        reason: 'REPLAY',
      }),
    ).toBe(1);
  });

  it('should accept exactly one of many copies spread over both instances', async () => {
    service = await database.start({ http });
    const raws = await Promise.all([1, 2, 3, 4].map(() => service.raw()));
    const envelope = signEnvelope('system.ping', {}, key);
    const replies = await Promise.all(
      raws.flatMap((raw) =>
        Array.from({ length: 6 }, () => raw.request('system.ping', envelope)),
      ),
    );
    const codes = replies.map((reply) => (reply.ok ? 'OK' : reply.error?.code));
    expect(codes.filter((code) => code === 'OK')).toHaveLength(1);
    expect(codes.filter((code) => code === 'REPLAY')).toHaveLength(23);
    const refusedBy = [
      await counter(service, 0, 'pai_rejections_total', { reason: 'REPLAY' }),
      await counter(service, 1, 'pai_rejections_total', { reason: 'REPLAY' }),
    ];
    // Both instances refused copies: the record is shared, not per process.
    expect(refusedBy[0]).toBeGreaterThan(0);
    expect(refusedBy[1]).toBeGreaterThan(0);
  });

  it('should lose no acknowledged transaction when one instance stops under load, and carry on with the other', async () => {
    service = await database.start({ http });
    const client = service.client({ timeoutMs: 10_000 });
    const token = await signUp(client, 'under-load');
    const acknowledged: string[] = [];
    const failures: unknown[] = [];
    let stopped = false;
    let servedAfterStop = 0;
    let next = 0;
    const worker = async () => {
      while (next < 120) {
        const reference = `load:${(next += 1)}`;
        try {
          await client.send('transactions.create', {
            token,
            amount: '1.00',
            reference,
          });
          acknowledged.push(reference);
          if (stopped) servedAfterStop += 1;
        } catch (error) {
          failures.push(error);
        }
      }
    };
    const workers = Array.from({ length: 6 }, () => worker());
    await waitFor(
      '30 acknowledged transactions',
      () => acknowledged.length >= 30,
      { timeoutMs: 20_000, intervalMs: 5 },
    );
    await service.closeInstance(0);
    stopped = true;
    await Promise.all(workers);

    expect(failures).toEqual([]);
    expect(acknowledged).toHaveLength(120);
    expect(servedAfterStop).toBeGreaterThan(0);
    expect((service.servers[0] as NatsServer).lastDrain).toMatchObject({
      drained: true,
      abandoned: 0,
    });
    const rows: { referencia: string }[] = await service.apps[1]
      .get(DataSource)
      .query('SELECT referencia FROM transacciones');
    expect(new Set(rows.map((row) => row.referencia))).toEqual(
      new Set(acknowledged),
    );
  });

  it('should let requests in flight on a stopping instance finish and reply', async () => {
    let instances = 0;
    let release = () => undefined as void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let holding = false;
    /** The first instance's database waits for `release` once `holding` is set. */
    service = await database.start({ http }, (builder) => {
      const gated = (instances += 1) === 1;
      return builder.overrideProvider(Database).useFactory({
        factory: (dataSource: DataSource) => {
          const real = new Database(dataSource, { databaseTimeoutMs: 60_000 });
          return gatedDatabase(real, async () => {
            if (gated && holding) await gate;
          });
        },
        inject: [DataSource],
      });
    });
    const client = service.client({ timeoutMs: 20_000 });
    const token = await signUp(client, 'drain');
    holding = true;
    const server = service.servers[0] as NatsServer;
    const sent: Promise<unknown>[] = [];
    let served = 0;
    // Until the gated instance holds two requests; the others are served by the second one.
    for (let n = 1; server.load.inFlight < 2; n += 1) {
      const [held, answered] = [server.load.inFlight, served];
      sent.push(
        client
          .send('transactions.create', { token, amount: `${n}.00` })
          .finally(() => (served += 1)),
      );
      await waitFor(
        `request ${n} to be held by the first instance or served by the second`,
        () => server.load.inFlight > held || served > answered,
      );
    }
    const stopping = service.closeInstance(0);
    await waitFor(
      'the first instance to stop taking requests',
      () => !server.isReceiving(),
    );
    // While the first instance drains, new requests go to the second.
    await expect(client.send('system.ping', {})).resolves.toHaveProperty(
      'serverTime',
    );
    release();
    await Promise.all(sent);
    await stopping;
    expect(server.lastDrain).toMatchObject({ drained: true, abandoned: 0 });
    const [row] = await service.apps[1]
      .get(DataSource)
      .query('SELECT COUNT(*) AS n FROM transacciones');
    expect(Number(row.n)).toBe(sent.length);
  });

  it("should give the client module each create's own outcome while a peer on the broker answers first with tampered copies", async () => {
    service = await database.start({ http });
    const client = service.client();
    const token = await signUp(client, 'forged-failures');
    const transport = service.config.transport;
    if (transport.kind !== 'nats') throw new Error('not NATS');
    // A peer the open test broker lets read the request subjects and publish anywhere: it sends a
    // copy of each create with one MAC digit changed, asking for the reply in the sender's inbox,
    // so the service's unsigned MAC_INVALID lands there before the genuine reply.
    const attacker = await connect({ servers: [...transport.servers] });
    let forged = 0;
    const sentByAttacker = new Set<string>();
    attacker.subscribe(`${transport.subjectPrefix}transactions.create`, {
      callback: (_, message) => {
        const packet = JSON.parse(message.string()) as {
          data: { mac: string };
        };
        const { mac } = packet.data;
        // Its own copies come back to it too.
        if (!message.reply || sentByAttacker.has(mac)) return;
        packet.data.mac = (mac[0] === '0' ? '1' : '0') + mac.slice(1);
        sentByAttacker.add(packet.data.mac);
        attacker.publish(message.subject, JSON.stringify(packet), {
          reply: message.reply,
        });
        forged += 1;
      },
    });
    await attacker.flush();
    try {
      const outcomes: string[] = [];
      for (let i = 0; i < 20; i += 1) {
        const reply = await client
          .send('transactions.create', { token, amount: '1.00' })
          .then(
            (ok) => (ok.created ? 'OK' : 'not created'),
            (error: { code: string }) => error.code,
          );
        outcomes.push(reply);
      }

      expect(forged).toBe(20);
      expect(outcomes).toEqual(Array.from({ length: 20 }, () => 'OK'));
      const rows: unknown[] = await service.dataSource.query(
        'SELECT id FROM transacciones',
      );
      expect(rows).toHaveLength(20);
    } finally {
      await attacker.close();
    }
  });

  it('should publish nothing onto a reply subject outside the inbox prefix, and run no handler', async () => {
    service = await database.start({ http });
    const client = service.client();
    const token = await signUp(client, 'foreign-reply');
    const transport = service.config.transport;
    if (transport.kind !== 'nats') throw new Error('not NATS');
    // Another service's command subject, which a peer would have PAI publish onto.
    const refund = `billing-${randomBytes(4).toString('hex')}.commands.refund`;
    const watcher = await connect({ servers: [...transport.servers] });
    const published: string[] = [];
    watcher.subscribe(refund, {
      callback: (_, message) => {
        published.push(message.string());
      },
    });
    await watcher.flush();
    try {
      const raw = (await service.raw()) as RawNatsClient;
      const envelope = signEnvelope(
        'transactions.create',
        { token, amount: '5.00', reference: 'foreign-reply' },
        key,
      );
      raw.publishRequest('transactions.create', envelope, refund);
      // Until an instance has refused it, or (were it served) its reply has landed there.
      await waitFor(
        'the request to be refused, or its reply published',
        () => refusedReplySubjects(service) === 1 || published.length > 0,
        { timeoutMs: 5_000, intervalMs: 10 },
      );
      await watcher.flush();
      expect(published).toEqual([]);
      expect(refusedReplySubjects(service)).toBe(1);
      const before: unknown[] = await service.dataSource.query(
        'SELECT id FROM transacciones',
      );
      expect(before).toHaveLength(0);

      // The same signed message asking for its reply in an inbox is served: the refusal was
      // for the reply subject alone, and recorded no nonce.
      expect((await raw.request('transactions.create', envelope)).ok).toBe(
        true,
      );
      const after: unknown[] = await service.dataSource.query(
        'SELECT id FROM transacciones',
      );
      expect(after).toHaveLength(1);
    } finally {
      await watcher.close();
    }
  });

  it('should be ready while connected to the broker, with no TCP connection gauge, and not ready once the connection is gone', async () => {
    service = await database.start({ http });
    const port = service.httpPort;
    const ready = await fetch(`http://127.0.0.1:${port}/health/ready`);
    const body = (await ready.json()) as Record<string, any>;
    expect(ready.status).toBe(200);
    expect(body.details.nats.status).toBe('up');
    expect(body.details.tcp).toBeUndefined();
    const metrics = await (
      await fetch(`http://127.0.0.1:${port}/metrics`)
    ).text();
    expect(metrics).toContain('pai_requests_in_flight 0');
    expect(metrics).not.toContain('pai_tcp_connections');

    // The connection closed under the service (as after an authorisation failure).
    await service.servers[0].unwrap<NatsConnection>().close();
    const down = await readinessBecomes(port!, 503);
    expect(down.body.error.nats.status).toBe('down');
  });
});

describeNats(`a broker restart (${databaseKind})`, () => {
  const database = useTestDatabase();
  let service: TestApp;
  let broker: ChildProcess | undefined;

  // After the database fixture's own hook: the service stops before its broker does.
  afterEach(async () => {
    if (broker) await stopNatsBroker(broker);
    broker = undefined;
  });

  const onPort = (port: number) => ({
    http,
    transport: {
      kind: 'nats' as const,
      servers: [`nats://127.0.0.1:${port}`],
      tls: false,
      queue: 'pai',
      subjectPrefix: 'pai.',
      inboxPrefix: '_INBOX.',
    },
  });

  it('should wait at start for a broker that is not up yet', async () => {
    const port = await freePort();
    const starting = database.start(onPort(port));
    await waitFor('the first attempt to reach the broker to fail', () =>
      nestLog
        .lines('warn')
        .some((line) => line.startsWith('NATS broker unreachable')),
    );
    broker = await startNatsBroker(port);
    service = await starting;
    await expect(
      service.client().send('system.ping', {}),
    ).resolves.toHaveProperty('serverTime');
    // The service kept trying, and says so.
    expect(nestLog.lines('log').join('\n')).toMatch(
      /NATS broker connected after \d+ attempts/,
    );
  });

  it('should keep the process running through a broker restart and serve again', async () => {
    const port = await freePort();
    broker = await startNatsBroker(port);
    service = await database.start(onPort(port));
    const client: PaiClient = service.client({ timeoutMs: 2_000 });
    await expect(client.send('system.ping', {})).resolves.toBeDefined();

    await stopNatsBroker(broker);
    const during = await client.send('system.ping', {}).catch((e) => e);
    expect(during).toBeInstanceOf(PaiClientError);
    expect(['CONNECTION', 'TIMEOUT']).toContain(
      (during as PaiClientError).code,
    );
    broker = await startNatsBroker(port);

    // Both ends reconnect by themselves (the client and the service keep trying).
    await waitFor(
      'a ping answered after the restart',
      () =>
        client.send('system.ping', {}).then(
          () => true,
          () => false,
        ),
      { timeoutMs: 20_000, intervalMs: 100 },
    );
    // Each instance reconnects on its own schedule (2 s apart at most): both become ready again.
    for (const app of service.apps) {
      await readinessBecomes(app.get(SidePort).boundPort()!, 200, 10_000);
    }
  });
});

describeNats(
  `a broker with the recommended permissions, deploy/nats-server.conf (${databaseKind})`,
  () => {
    const serviceUser = nkeys.createUser();
    const billingUser = nkeys.createUser();
    const shopPassword = randomBytes(18).toString('base64url');
    let secrets: string;
    let url: string;
    let broker: ChildProcess;
    let service: TestApp;
    const connections: NatsConnection[] = [];
    const clients: PaiClient[] = [];

    beforeAll(async () => {
      const port = await freePort();
      url = `nats://127.0.0.1:${port}`;
      broker = await startNatsBroker(port, {
        config: join(__dirname, '..', '..', 'deploy', 'nats-server.conf'),
        env: {
          PAI_SERVICE_NKEY: serviceUser.getPublicKey(),
          PAI_BILLING_NKEY: billingUser.getPublicKey(),
          // Quoted: nats-server reads a variable's value as configuration, where `$` starts a
          // reference, and a bcrypt hash is full of them.
          PAI_SHOP_PASSWORD_HASH: `"${await bcrypt.hash(shopPassword, 10)}"`,
        },
      });
      secrets = mkdtempSync(join(tmpdir(), 'pai-nats-'));
      writeFileSync(join(secrets, 'service.nk'), serviceUser.getSeed(), {
        mode: 0o600,
      });
    });

    afterAll(async () => {
      await stopNatsBroker(broker);
      rmSync(secrets, { recursive: true, force: true });
    });

    // Before the database fixture's own hook: the clients close before the service does.
    afterEach(async () => {
      await Promise.all(connections.splice(0).map((each) => each.close()));
      await Promise.all(clients.splice(0).map((each) => each.close()));
    });
    const database = useTestDatabase();

    beforeEach(async () => {
      // As the service reads its environment: the seed from a file.
      const transport = parseTransportConfig({
        PAI_TRANSPORT: 'nats',
        PAI_NATS_SERVERS: url,
        PAI_NATS_NKEY_SEED_FILE: join(secrets, 'service.nk'),
      });
      service = await database.start({ transport });
    });

    const asBilling = {
      authenticator: nkeyAuthenticator(billingUser.getSeed()),
    };
    const asShop = { user: 'shop', pass: shopPassword };

    async function connectAs(
      auth: Partial<ConnectionOptions>,
    ): Promise<NatsConnection> {
      const connection = await connect({ servers: [url], ...auth });
      connections.push(connection);
      return connection;
    }

    /**
     * The broker's refusal of a subscription, or undefined when it allowed it: the broker handles
     * the SUB before the PING of a flush, so its answer is in by the time the flush resolves.
     */
    async function subscriptionRefusal(
      connection: NatsConnection,
      subject: string,
      queue?: string,
    ): Promise<string | undefined> {
      let refusal: Error | undefined;
      const subscription = connection.subscribe(subject, {
        queue,
        callback: (error) => {
          if (error) refusal = error;
        },
      });
      await connection.flush();
      if (!subscription.isClosed()) subscription.unsubscribe();
      return refusal?.name;
    }

    function client(extra: Partial<PaiNatsClientOptions>): PaiClient {
      const made = createPaiClient({
        transport: 'nats',
        servers: url,
        kid: 'default',
        secret: TEST_KEYS.default,
        timeoutMs: 5_000,
        now: () => service.clock.now(),
        ...extra,
      });
      clients.push(made);
      return made;
    }

    it('should run the configuration docs/nats.md shows', () => {
      const root = join(__dirname, '..', '..');
      expect(readFileSync(join(root, 'docs', 'nats.md'), 'utf8')).toContain(
        readFileSync(join(root, 'deploy', 'nats-server.conf'), 'utf8'),
      );
    });

    it("should let no client read the requests, nor another client's replies", async () => {
      const billing = await connectAs(asBilling);
      const shop = await connectAs(asShop);
      const violation = 'PermissionViolationError';
      // The request subjects carry passwords and tokens: no client reads them, in the queue group
      // or beside it.
      expect(await subscriptionRefusal(shop, 'pai.>')).toBe(violation);
      expect(await subscriptionRefusal(shop, 'pai.>', 'pai')).toBe(violation);
      expect(await subscriptionRefusal(billing, 'pai.auth.login')).toBe(
        violation,
      );
      // Replies carry session tokens: each client reads its own inboxes only.
      expect(await subscriptionRefusal(billing, '_INBOX.shop.>')).toBe(
        violation,
      );
      expect(await subscriptionRefusal(billing, '_INBOX.>')).toBe(violation);
      expect(await subscriptionRefusal(shop, '_INBOX.billing.>')).toBe(
        violation,
      );
      expect(await subscriptionRefusal(billing, '_INBOX.billing.>')).toBe(
        undefined,
      );
      // Even the service's own user takes requests only as a member of the queue group.
      const asService = await connectAs({
        authenticator: nkeyAuthenticator(serviceUser.getSeed()),
      });
      expect(await subscriptionRefusal(asService, 'pai.>')).toBe(violation);
    });

    it("should refuse a client's publication into another client's inbox", async () => {
      const billing = await connectAs(asBilling);
      const refused = (async () => {
        for await (const status of billing.status()) {
          if (status.type === 'error') return status.error.name;
        }
        return undefined;
      })();
      billing.publish('_INBOX.shop.forged', '{"isDisposed":true}');
      await billing.flush();
      expect(await refused).toBe('PermissionViolationError');
    });

    it('should serve the client module end to end, with an NKey and with a password', async () => {
      const billing = client({
        inboxPrefix: '_INBOX.billing.',
        authenticator: nkeyAuthenticator(billingUser.getSeed()),
      });
      await expect(billing.send('system.ping', {})).resolves.toHaveProperty(
        'serverTime',
      );
      const token = await signUp(billing, 'nats-permissions');
      await expect(
        billing.send('transactions.create', { token, amount: '12.50' }),
      ).resolves.toMatchObject({ transaction: { amount: '12.50' } });

      const shop = client({
        servers: `nats://shop:${encodeURIComponent(shopPassword)}@127.0.0.1:${new URL(url).port}`,
        inboxPrefix: '_INBOX.shop.',
      });
      const { token: shopToken } = await shop.send('auth.login', {
        username: 'nats-permissions',
        password: TEST_PASSWORD,
      });
      await expect(
        shop.send('transactions.create', { token: shopToken, amount: '1.00' }),
      ).resolves.toMatchObject({ transaction: { amount: '1.00' } });
      const rows: unknown[] = await service.dataSource.query(
        'SELECT id FROM transacciones',
      );
      expect(rows).toHaveLength(2);
    });

    it('should fail a client whose inbox the broker does not let it read, without waiting for its timeout', async () => {
      const shop = client({
        servers: `nats://shop:${encodeURIComponent(shopPassword)}@127.0.0.1:${new URL(url).port}`,
        // The default `_INBOX.`: outside the `_INBOX.shop.>` this user may read.
        timeoutMs: 30_000,
      });
      const started = performance.now();
      const failure = await shop
        .send('system.ping', {})
        .catch((error) => error);
      // The broker refuses the inbox subscription at once: CONNECTION, not a TIMEOUT.
      expect(failure).toBeInstanceOf(PaiClientError);
      expect((failure as PaiClientError).code).toBe('CONNECTION');
      expect(performance.now() - started).toBeLessThan(5_000);
    });
  },
);
