import { signEnvelope } from '../support/raw-client';
import {
  describeWithRedis,
  describeWithRedisServer,
  startPrivateRedis,
  TEST_REDIS_URL,
  testRedisPrefix,
  type PrivateRedis,
} from '../support/redis';
import {
  killServiceProcess,
  serviceEnv,
  startServiceProcess,
} from '../support/service-process';
import { probeReadiness, readinessBecomes } from '../support/http-side';
import { TcpProxy } from '../support/tcp-proxy';
import type { TestOverrides } from '../support/config';
import { TEST_KEYS, signedFor } from '../support/test-app';
import { databaseKind } from '../support/test-database';
import { useTestDatabase } from '../support/use-test-app';
import { waitFor } from '../support/wait-for';

const key = TEST_KEYS.default;

/**
 * The Redis nonce record (PAI_NONCE_STORE=redis) behind the real service: two instances on one
 * database and one Redis, as a scale-out deployment runs them.
 */
describeWithRedis(`Redis nonce record (${databaseKind})`, () => {
  const database = useTestDatabase();
  let prefix: string;

  async function instance(overrides: TestOverrides = {}) {
    const app = await database.start({
      nonceRecord: { kind: 'redis', url: TEST_REDIS_URL, prefix },
      ...overrides,
    });
    // Over TCP a connection to this instance; over NATS (npm run test:nats) a connection to the
    // broker, where this "instance" is itself two in a queue group.
    return { app, raw: await app.raw() };
  }

  beforeEach(() => {
    prefix = testRedisPrefix();
  });

  it('should refuse on one instance a message accepted by another', async () => {
    const a = await instance();
    const b = await instance();
    const envelope = signEnvelope('system.ping', {}, key);

    expect((await a.raw.request('system.ping', envelope)).ok).toBe(true);
    const replay = await b.raw.request('system.ping', envelope);

    expect(replay.error?.code).toBe('REPLAY');
    expect(signedFor(replay, 'system.ping', envelope)).toBe(true);
  });

  it('should accept exactly one of many copies sent at once to both instances', async () => {
    const a = await instance();
    const b = await instance();
    const extra = await Promise.all(
      [a.app, b.app, a.app, b.app].map((app) => app.raw()),
    );
    const envelope = signEnvelope('system.ping', {}, key);

    const replies = await Promise.all(
      [a.raw, b.raw, ...extra].map((raw) =>
        raw.request('system.ping', envelope),
      ),
    );

    const codes = replies.map((r) => (r.ok ? 'OK' : r.error?.code));
    expect(codes.filter((c) => c === 'OK')).toHaveLength(1);
    expect(codes.filter((c) => c === 'REPLAY')).toHaveLength(5);
  });

  it('should refuse a replay after every instance restarted (the record outlives them)', async () => {
    const a = await instance();
    const envelope = signEnvelope('system.ping', {}, key);
    expect((await a.raw.request('system.ping', envelope)).ok).toBe(true);

    await a.app.close();
    const again = await instance();

    expect((await again.raw.request('system.ping', envelope)).error?.code).toBe(
      'REPLAY',
    );
  });

  it('should answer UNAVAILABLE, signed, while Redis is down, report not ready, and recover by itself', async () => {
    const { hostname, port } = new URL(TEST_REDIS_URL);
    const proxy = await TcpProxy.start({
      host: hostname,
      port: Number(port || 6379),
    });
    try {
      const { app, raw } = await instance({
        nonceRecord: {
          kind: 'redis',
          url: `redis://127.0.0.1:${proxy.port}/0`,
          prefix,
        },
        http: { host: '127.0.0.1', port: 0 },
      });
      expect(
        (await raw.request('system.ping', signEnvelope('system.ping', {}, key)))
          .ok,
      ).toBe(true);
      expect((await probeReadiness(app.httpPort!)).status).toBe(200);

      await proxy.down();
      const envelope = signEnvelope('system.ping', {}, key);
      const refused = await raw.request('system.ping', envelope);
      expect(refused.error?.code).toBe('UNAVAILABLE');
      expect(signedFor(refused, 'system.ping', envelope)).toBe(true);
      // Nothing about Redis (address, URL, driver message) reaches the client.
      expect(JSON.stringify(refused)).not.toMatch(/redis|6379|ECONN/i);
      const notReady = await readinessBecomes(app.httpPort!, 503);
      expect(notReady.body.error).toEqual({ nonceRecord: { status: 'down' } });

      await proxy.up();
      let code: string | undefined;
      await waitFor(
        () => `a ping served once Redis is back (last: ${code})`,
        async () => {
          const reply = await raw.request(
            'system.ping',
            signEnvelope('system.ping', {}, key),
          );
          code = reply.ok ? 'OK' : reply.error?.code;
          return reply.ok;
        },
        { timeoutMs: 5_000, intervalMs: 100 },
      );
      await readinessBecomes(app.httpPort!, 200);
    } finally {
      await proxy.close();
    }
  });

  describeWithRedisServer('on a Redis of its own that may evict keys', () => {
    let redis: PrivateRedis;

    beforeAll(async () => {
      redis = await startPrivateRedis(['--maxmemory-policy', 'volatile-lru']);
    });
    beforeEach(async () => {
      await redis.admin.config('SET', 'maxmemory-policy', 'volatile-lru');
    });
    afterAll(async () => {
      await redis.stop();
    });

    it('should refuse to start, in one line naming PAI_REDIS_URL and the setting to change', async () => {
      const outcome = await startServiceProcess(
        serviceEnv(database(), {
          PAI_NONCE_STORE: 'redis',
          PAI_REDIS_URL: redis.url,
          PAI_REDIS_PREFIX: prefix,
        }),
      ).then(
        async (service) => {
          await killServiceProcess(service);
          return new Error('the service started');
        },
        (error: Error) => error,
      );

      // startServiceProcess's error carries the exit status and everything the process wrote.
      const output = outcome.message;
      expect(output).toMatch(/^service exited \(1\) before listening/);
      const refusals = output
        .split('\n')
        .filter((line) => line.includes('PAI cannot start'));
      expect(refusals).toEqual([
        'PAI cannot start: PAI_REDIS_URL: the Redis it names has maxmemory-policy volatile-lru, which can evict nonce keys and let replays through; set maxmemory-policy noeviction on that Redis',
      ]);
      expect(output).not.toMatch(/\n\s+at /);
      expect(output).not.toContain(redis.url);
      expect(await redis.admin.exists(`${prefix}nonce-record-since`)).toBe(0);
    });

    it('should not be ready while the Redis may evict keys, and be ready again once it may not', async () => {
      await redis.admin.config('SET', 'maxmemory-policy', 'noeviction');
      const { app, raw } = await instance({
        nonceRecord: { kind: 'redis', url: redis.url, prefix },
        http: { host: '127.0.0.1', port: 0 },
      });
      expect((await probeReadiness(app.httpPort!)).status).toBe(200);

      await redis.admin.config('SET', 'maxmemory-policy', 'allkeys-lru');
      const down = await readinessBecomes(app.httpPort!, 503);
      expect(down.body.error).toEqual({ nonceRecord: { status: 'down' } });
      expect(down.text).not.toMatch(/allkeys|maxmemory|policy/i);

      await redis.admin.config('SET', 'maxmemory-policy', 'noeviction');
      await readinessBecomes(app.httpPort!, 200);
      expect(
        (await raw.request('system.ping', signEnvelope('system.ping', {}, key)))
          .ok,
      ).toBe(true);
    });
  });
});
