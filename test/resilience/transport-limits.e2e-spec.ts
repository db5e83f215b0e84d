import { gatedDatabase } from '../support/gated-database';
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { DataSource } from 'typeorm';
import { Database } from '../../src/database/database.service';
import type { TcpServer } from '../../src/transport/tcp.server';
import { signUp } from '../support/accounts';
import { RawClient, signEnvelope, type WireReply } from '../support/raw-client';
import { TEST_KEYS, type TestApp, describeTcpOnly } from '../support/test-app';
import { databaseKind } from '../support/test-database';
import { useTestDatabase } from '../support/use-test-app';
import { waitFor } from '../support/wait-for';

const key = TEST_KEYS.default;
const ping = (raw: RawClient) =>
  raw.request('system.ping', signEnvelope('system.ping', {}, key));

/** Resolves with how long the server took to close `socket` (it never sends anything first). */
async function closedWithin(socket: Socket, limitMs: number): Promise<number> {
  const started = performance.now();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`connection still open after ${limitMs} ms`)),
      limitMs,
    );
  });
  try {
    await Promise.race([once(socket, 'close'), timeout]);
  } finally {
    clearTimeout(timer);
  }
  return performance.now() - started;
}

/** The reply, or 'closed' when the connection closed first (the request was never answered). */
function replyOrClosed(
  raw: RawClient,
  reply: Promise<WireReply>,
): Promise<WireReply | 'closed'> {
  return Promise.race([reply, raw.closed.then(() => 'closed' as const)]);
}

const describeSuite = describeTcpOnly(
  'frame and idle timeouts, the connection cap and the TCP drain; the NATS drain is in nats.e2e-spec.ts',
);

describeSuite(`transport limits (${databaseKind})`, () => {
  let service: TestApp;
  const open: (RawClient | Socket)[] = [];

  // Before the database fixture's own hook: the connections close before the service does.
  afterEach(() => {
    for (const item of open.splice(0)) {
      if (item instanceof RawClient) item.close();
      else item.destroy();
    }
  });
  const database = useTestDatabase();

  async function rawClient(port = service.port): Promise<RawClient> {
    const raw = await RawClient.connect(port);
    open.push(raw);
    return raw;
  }

  it('should close a frame trickled byte by byte once its time is up, and serve others meanwhile', async () => {
    service = await database.start({ tcp: { frameTimeoutMs: 400 } });
    const slow = await rawClient();
    const other = await rawClient();
    const frame = JSON.stringify({ pattern: 'system.ping', data: {}, id: 'x' });
    slow.writeRaw(`${frame.length}#`);
    // One character every 50 ms: Nest's own timer restarts on every read and would wait forever.
    let sent = 0;
    const trickle = setInterval(() => {
      if (!slow.socket.destroyed) slow.writeRaw(frame[sent++ % frame.length]);
    }, 50);
    try {
      expect((await ping(other)).ok).toBe(true);
      await closedWithin(slow.socket, 3_000);
      expect(sent).toBeLessThan(frame.length);
      expect((await ping(other)).ok).toBe(true);
    } finally {
      clearInterval(trickle);
    }
  });

  it('should give every pipelined frame its own time, so a busy connection is never cut', async () => {
    service = await database.start({ tcp: { frameTimeoutMs: 300 } });
    const raw = await rawClient();
    // Back-to-back requests for three timeouts' worth, each frame split across two writes.
    const deadline = performance.now() + 900;
    let answered = 0;
    while (performance.now() < deadline) {
      const envelope = signEnvelope('system.ping', {}, key);
      const json = JSON.stringify({
        pattern: 'system.ping',
        data: envelope,
        id: `r${answered}`,
      });
      const reply = replyOrClosed(
        raw,
        new Promise<WireReply>((resolve) => {
          raw.socket.once('data', () => resolve({} as WireReply));
        }),
      );
      raw.writeRaw(`${json.length}#${json.slice(0, 10)}`);
      // Time is the subject: the frame's second half comes in a later read, 20 ms on.
      await sleep(20);
      raw.writeRaw(json.slice(10));
      expect(await reply).not.toBe('closed');
      answered += 1;
    }
    expect(answered).toBeGreaterThan(10);
    expect(raw.socket.destroyed).toBe(false);
  });

  it('should close an idle connection, and keep a busy one', async () => {
    service = await database.start({ tcp: { idleTimeoutMs: 500 } });
    const idle = await rawClient();
    const busy = await rawClient();
    const keepBusy = setInterval(() => void ping(busy), 100);
    try {
      await closedWithin(idle.socket, 3_000);
      // Time is the subject: the busy connection outlives another idle timeout.
      await sleep(600);
      expect(busy.socket.destroyed).toBe(false);
      expect((await ping(busy)).ok).toBe(true);
    } finally {
      clearInterval(keepBusy);
    }
  });

  it('should refuse connections over the cap at once, and keep serving the open ones', async () => {
    service = await database.start({ tcp: { maxConnections: 3 } });
    const admitted = [await rawClient(), await rawClient(), await rawClient()];
    for (const raw of admitted) expect((await ping(raw)).ok).toBe(true);

    const refused = connect(service.port, '127.0.0.1');
    refused.on('error', () => undefined);
    open.push(refused);
    await closedWithin(refused, 2_000);

    for (const raw of admitted) expect((await ping(raw)).ok).toBe(true);
    admitted[0].close();
    await admitted[0].closed;
    // The freed slot is available again, once the server has seen the close.
    const server = service.servers[0] as TcpServer;
    await waitFor(
      'the server to see the connection close',
      () => server.load.connections < 3,
    );
    const next = await rawClient();
    expect((await ping(next)).ok).toBe(true);
  });

  describe('peers that show no key', () => {
    /** A connection from another loopback address, which sends nothing. */
    async function silentFrom(address: string): Promise<Socket> {
      const socket = connect({
        port: service.port,
        host: '127.0.0.1',
        localAddress: address,
      });
      socket.on('error', () => undefined);
      open.push(socket);
      await once(socket, 'connect');
      return socket;
    }

    it('should close silent connections after the authentication time, so they cannot hold the cap', async () => {
      service = await database.start({
        tcp: { maxConnections: 50, authTimeoutMs: 500 },
      });
      const silent = await Promise.all(
        Array.from({ length: 50 }, () => silentFrom('127.0.0.2')),
      );
      const started = performance.now();

      await Promise.all(silent.map((socket) => closedWithin(socket, 3_000)));
      const raw = await rawClient();
      expect((await ping(raw)).ok).toBe(true);
      const servedAfterMs = performance.now() - started;

      expect(servedAfterMs).toBeLessThan(3_000);
      expect((service.servers[0] as TcpServer).refusals.silent).toBe(50);
    });

    it('should close a connection after a few unauthenticated messages in a row, and keep one that signs', async () => {
      service = await database.start({ tcp: { maxUnverifiedInRow: 3 } });
      const forger = await rawClient();
      const signer = await rawClient();
      const forged = () => ({
        ...signEnvelope('system.ping', {}, key),
        mac: '0'.repeat(64),
      });

      const replies = await Promise.all(
        [1, 2, 3, 4].map(() =>
          replyOrClosed(forger, forger.request('system.ping', forged())),
        ),
      );
      await forger.closed;
      for (let i = 0; i < 5; i += 1) {
        expect((await ping(signer)).ok).toBe(true);
      }

      expect(
        replies.slice(0, 3).map((r) => r !== 'closed' && r.error?.code),
      ).toEqual(['MAC_INVALID', 'MAC_INVALID', 'MAC_INVALID']);
      expect(replies[3]).toBe('closed');
      expect(signer.socket.destroyed).toBe(false);
      expect((service.servers[0] as TcpServer).refusals.unverifiedInRow).toBe(
        1,
      );
    });

    it('should refuse connections over the per-address cap, and serve other addresses', async () => {
      service = await database.start({ tcp: { maxConnectionsPerAddress: 5 } });
      const sockets = await Promise.all(
        Array.from({ length: 10 }, () => silentFrom('127.0.0.2')),
      );
      await waitFor(
        'the connections over the cap to be closed',
        () => sockets.filter((socket) => socket.destroyed).length >= 5,
      );

      expect(sockets.filter((socket) => socket.destroyed)).toHaveLength(5);
      const raw = await rawClient();
      expect((await ping(raw)).ok).toBe(true);
      expect((service.servers[0] as TcpServer).refusals.overAddressCap).toBe(5);
    });
  });

  describe('graceful stop', () => {
    let release: () => void;
    let held: number;
    let holding: boolean;

    beforeEach(() => {
      release = () => undefined;
      held = 0;
      holding = false;
    });

    /**
     * A database that, once `holding` is set (after the app has started), holds every call until
     * released, as a slow one would; once released it lets everything through. `held` counts
     * the calls waiting.
     */
    function slowDatabase(real: Database) {
      let opened = false;
      let open: () => void = () => undefined;
      const gate = new Promise<void>((resolve) => (open = resolve));
      release = () => {
        opened = true;
        open();
      };
      const wait = async () => {
        if (opened || !holding) return;
        held += 1;
        await gate;
      };
      return gatedDatabase(real, wait);
    }

    /** A session on the suite's database, made through a plain app that is closed again. */
    async function sessionToken(username: string): Promise<string> {
      const plain = await database.start();
      try {
        return await signUp(plain.client(), username);
      } finally {
        await plain.close();
      }
    }

    it('should let requests in flight finish and reply, dispatch no new ones, then close', async () => {
      const token = await sessionToken('drain');

      // The same database, now behind a Database whose writes wait for a signal.
      let gated: ReturnType<typeof slowDatabase> | undefined;
      service = await database.start({ drainTimeoutMs: 10_000 }, (b) =>
        b.overrideProvider(Database).useFactory({
          factory: (dataSource: DataSource) =>
            (gated = slowDatabase(
              new Database(dataSource, { databaseTimeoutMs: 60_000 }),
            )),
          inject: [DataSource],
        }),
      );
      expect(gated).toBeDefined();
      const raw = await rawClient();
      holding = true;
      const inFlight = [1, 2, 3].map((n) =>
        replyOrClosed(
          raw,
          raw.request(
            'transactions.create',
            signEnvelope(
              'transactions.create',
              { token, amount: `${n}.00` },
              key,
            ),
          ),
        ),
      );
      // All three dispatched and waiting on the database (on MySQL the three nonces may share
      // one batched INSERT, so count requests in flight rather than database calls).
      const server = service.app.getTransportServer() as TcpServer;
      await waitFor(
        'three requests in flight, held by the database',
        () => server.load.inFlight >= 3 && held >= 1,
      );
      const stopping = service.close();
      await waitFor('the stop to begin', () => !server.isReceiving());
      // Sent after the stop began: must not run (and so may be retried elsewhere).
      const late = replyOrClosed(
        raw,
        raw.request(
          'transactions.create',
          signEnvelope('transactions.create', { token, amount: '9.00' }, key),
        ),
      );
      // Time is the subject: nothing marks a request the draining server ignores; the late one
      // has 50 ms to be (wrongly) dispatched before the held ones are released.
      await sleep(50);
      release();
      const replies = await Promise.all(inFlight);
      for (const reply of replies) {
        expect(reply).not.toBe('closed');
        expect((reply as WireReply).ok).toBe(true);
      }
      expect(await late).toBe('closed');
      await stopping;
      expect(server.lastDrain).toMatchObject({ drained: true, abandoned: 0 });

      service = await database.start();
      const rows: { cantidad: unknown }[] = await service.dataSource.query(
        'SELECT cantidad FROM transacciones',
      );
      expect(rows.map((row) => Number(row.cantidad)).sort()).toEqual([1, 2, 3]);
    });

    it('should cut off requests still running at the drain timeout', async () => {
      const token = await sessionToken('stuck');
      service = await database.start({ drainTimeoutMs: 300 }, (b) =>
        b.overrideProvider(Database).useFactory({
          factory: (dataSource: DataSource) =>
            slowDatabase(
              new Database(dataSource, { databaseTimeoutMs: 60_000 }),
            ),
          inject: [DataSource],
        }),
      );
      const raw = await rawClient();
      holding = true;
      const stuck = replyOrClosed(
        raw,
        raw.request(
          'transactions.create',
          signEnvelope('transactions.create', { token, amount: '1.00' }, key),
        ),
      );
      const server = service.app.getTransportServer() as TcpServer;
      await waitFor(
        'a request in flight, held by the database',
        () => server.load.inFlight >= 1 && held >= 1,
      );
      const started = performance.now();
      await service.close();
      expect(performance.now() - started).toBeLessThan(5_000);
      expect(server.lastDrain).toMatchObject({ drained: false, abandoned: 1 });
      expect(await stuck).toBe('closed');
      release();
    });
  });
});
