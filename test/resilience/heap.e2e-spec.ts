/**
 * Sustained hostile traffic leaves the heap flat: 50 000 messages that all fail a check
 * (stale, wrong MAC, replayed, unknown key, malformed) plus garbage frames on short-lived
 * connections, with the heap measured after full collections before and after.
 *
 * The service runs in this process, as in every e2e suite (startTestApp), and the collector is
 * reached through V8's own flag at run time (`--expose-gc` set with v8.setFlagsFromString, the
 * function taken from a fresh context): nothing has to be built first and no flag has to be given
 * to jest, so `npm test` works on a fresh clone on both databases. The client shares the heap,
 * but it keeps nothing per message (each reply is checked and dropped), so a growth is the
 * service's, or a leak in the client worth knowing about too.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { GarbageConnection } from '../support/hostile/garbage-connection';
import { tableNonces } from '../support/hostile/nonce-table';
import { Pipeline } from '../support/hostile/pipeline';
import { newNonce, signEnvelope } from '../support/raw-client';
import { report } from '../support/report';
import { TEST_KEYS, describeTcpOnly } from '../support/test-app';
import { databaseKind } from '../support/test-database';
import { useTestApp } from '../support/use-test-app';

jest.setTimeout(180_000);

const WARM_UP = 5_000;
const HOSTILE = Number(process.env.HEAP_HOSTILE ?? 50_000);
const GARBAGE_CONNECTIONS = 1_000;
/**
 * A leak of anything per message (a nonce row, a pending promise, a socket buffer, a log entry)
 * is at least ~64 bytes, so 50 000 messages would leave at least 3.2 MB behind. A full collection
 * here settles within a few hundred KB run to run; 2 MB sits between the two.
 */
const MAX_GROWTH_BYTES = 2 * 1024 * 1024;

setFlagsFromString('--expose-gc');
const collect = runInNewContext('gc') as () => void;

async function heapAfterGc(): Promise<number> {
  // Several rounds, with turns of the event loop between them, so that finalizers and
  // weak callbacks (sockets, timers) run and what they release is collected too.
  for (let round = 0; round < 4; round += 1) {
    collect();
    await new Promise((resolve) => setImmediate(resolve));
  }
  return process.memoryUsage().heapUsed;
}

const describeSuite = describeTcpOnly(
  'hostile traffic through the TCP framing',
);

describeSuite(`Heap under sustained hostile traffic (${databaseKind})`, () => {
  // Every message here fails a check; the rule that closes such a connection after a few in a
  // row would end the test's connections early (it has its own tests).
  const service = useTestApp(
    { tcp: { maxUnverifiedInRow: 1_000_000 } },
    { lifetime: 'block' },
  );

  /** The genuine pings whose copies are replayed; the only nonces the record may hold. */
  const genuine: ReturnType<typeof signEnvelope>[] = [];
  const failedNonces: string[] = [];

  /** One hostile message: every one of them fails a check. */
  function hostile(index: number): { pattern: string; data: unknown } {
    const key = TEST_KEYS.default;
    const nonce = newNonce();
    // A few of them (from the warm-up: the list must not grow during the measurement).
    if (index % 6 !== 2 && index % 6 !== 5 && failedNonces.length < 200)
      failedNonces.push(nonce);
    switch (index % 6) {
      case 0:
        return {
          pattern: 'system.ping',
          data: signEnvelope('system.ping', {}, key, {
            nonce,
            ts: Date.now() - 3_600_000,
          }),
        };
      case 1: {
        const envelope = signEnvelope(
          'transactions.list',
          { token: 'x' },
          key,
          { nonce },
        );
        return {
          pattern: 'transactions.list',
          data: {
            ...envelope,
            mac: envelope.mac.replace(/^./, (c) => (c === '0' ? '1' : '0')),
          },
        };
      }
      case 2:
        return {
          pattern: 'system.ping',
          data: genuine[index % genuine.length],
        };
      case 3:
        return {
          pattern: 'system.ping',
          data: signEnvelope('system.ping', {}, key, {
            kid: `retired-${index % 97}`,
            nonce,
          }),
        };
      case 4:
        return {
          pattern: 'auth.login',
          data: {
            ...signEnvelope('auth.login', {}, key, { nonce }),
            v: 2,
            extra: 'x'.repeat(200),
          },
        };
      default:
        return { pattern: `p${index}`, data: ['not', 'an', 'envelope', index] };
    }
  }

  async function sendHostile(count: number, offset: number): Promise<number> {
    const pipeline = await Pipeline.open(service().port);
    let answered = 0;
    try {
      const indexes = Array.from({ length: count }, (_, i) => offset + i);
      await pipeline.run(indexes, async (client, index) => {
        const { pattern, data } = hostile(index);
        const reply = await client.request(pattern, data);
        // Every one of them must be refused; an accepted one would be recorded legitimately.
        if (reply.ok !== false)
          throw new Error(`message ${index} was accepted`);
        answered += 1;
      });
    } finally {
      pipeline.close();
    }
    return answered;
  }

  async function sendGarbage(count: number): Promise<void> {
    const frames = [
      '99999999#',
      '11#{"pattern":',
      'garbage',
      '5#[1,2]',
      '\u0000\u00ff\u0001#',
    ];
    for (let i = 0; i < count; i += 10) {
      await Promise.all(
        frames.concat(frames).map(async (text) => {
          const connection = await GarbageConnection.open(service().port);
          connection.socket.write(text);
          // Every one of these frames is broken: the service must close at once.
          const timer = setTimeout(() => connection.socket.destroy(), 5_000);
          await connection.closed;
          clearTimeout(timer);
          if (!connection.closedByServer) throw new Error(`${text} left open`);
        }),
      );
    }
  }

  it('should keep the heap flat and record no nonce for 50 000 hostile messages', async () => {
    const pipeline = await Pipeline.open(service().port, 1);
    try {
      await pipeline.run(Array.from({ length: 10 }), async (client) => {
        const envelope = signEnvelope('system.ping', {}, TEST_KEYS.default);
        expect((await client.request('system.ping', envelope)).ok).toBe(true);
        genuine.push(envelope);
      });
    } finally {
      pipeline.close();
    }

    // Warm-up: JIT, connection pools, lazily built caches and the like settle first.
    await sendHostile(WARM_UP, 0);
    await sendGarbage(200);
    const before = await heapAfterGc();

    const started = Date.now();
    const answered = await sendHostile(HOSTILE, WARM_UP);
    await sendGarbage(GARBAGE_CONNECTIONS);
    const seconds = (Date.now() - started) / 1_000;
    const after = await heapAfterGc();

    const mb = (bytes: number) => (bytes / 1024 / 1024).toFixed(2);
    report(
      `heap (${databaseKind}): ${mb(before)} MB before, ${mb(after)} MB after ${answered} hostile messages ` +
        `and ${GARBAGE_CONNECTIONS} garbage connections in ${seconds.toFixed(1)} s: growth ${mb(after - before)} MB`,
    );
    expect(answered).toBe(HOSTILE);
    expect(after - before).toBeLessThan(MAX_GROWTH_BYTES);

    // The record holds the ten genuine pings and nothing else: no unauthenticated entry.
    const rows = await tableNonces(service().dataSource, databaseKind);
    if (rows) {
      expect(rows.map((row) => row.nonce).sort()).toEqual(
        genuine.map((envelope) => envelope.nonce).sort(),
      );
    }
    // Whatever holds the record, the nonces of refused messages are still free.
    const reuse = await Pipeline.open(service().port);
    try {
      await reuse.run(failedNonces.slice(0, 200), async (client, nonce) => {
        const envelope = signEnvelope('system.ping', {}, TEST_KEYS.default, {
          nonce,
        });
        expect((await client.request('system.ping', envelope)).ok).toBe(true);
      });
    } finally {
      reuse.close();
    }
  });
});
