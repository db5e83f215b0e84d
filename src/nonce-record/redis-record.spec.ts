import { UnavailableError } from '../common/unavailable';
import { randomBytes } from 'node:crypto';
import Redis from 'ioredis';
import {
  describeWithRedis,
  describeWithRedisServer,
  startPrivateRedis,
  TEST_REDIS_URL,
  testRedisPrefix,
  type PrivateRedis,
} from '../../test/support/redis';
import { TcpProxy } from '../../test/support/tcp-proxy';
import { waitFor } from '../../test/support/wait-for';
import { ConfigError } from '@pai/client/config/config.error';
import { EvictingRedisError, RedisRecord } from './redis-record';

const WINDOW_MS = 300_000;
const nonce = () => randomBytes(16).toString('base64url');

describeWithRedis(RedisRecord.name, () => {
  const open: RedisRecord[] = [];
  let admin: Redis;
  let prefix: string;

  async function record(
    options: Partial<{ url: string; prefix: string; now: number }> = {},
  ): Promise<RedisRecord> {
    const created = new RedisRecord({
      url: options.url ?? TEST_REDIS_URL,
      prefix: options.prefix ?? prefix,
      commandTimeoutMs: 1_000,
    });
    open.push(created);
    await created.open(options.now ?? Date.now() - WINDOW_MS);
    return created;
  }

  beforeAll(() => {
    admin = new Redis(TEST_REDIS_URL);
  });
  beforeEach(() => {
    prefix = testRedisPrefix();
  });
  afterEach(async () => {
    await Promise.all(open.splice(0).map((r) => r.close()));
    const keys = await admin.keys(`${prefix}*`);
    if (keys.length > 0) await admin.del(...keys);
  });
  afterAll(async () => {
    await admin.quit();
  });

  it('should accept a pair once and refuse it after, from any instance sharing the Redis', async () => {
    const [first, second] = [await record(), await record()];
    const now = Date.now();
    const n = nonce();

    expect(await first.consume('k', n, now, now, WINDOW_MS)).toBe('accepted');
    expect(await first.consume('k', n, now, now, WINDOW_MS)).toBe('replay');
    expect(await second.consume('k', n, now, now, WINDOW_MS)).toBe('replay');
    // The same nonce under another key id is another pair.
    expect(await second.consume('k2', n, now, now, WINDOW_MS)).toBe('accepted');
  });

  it('should accept exactly one of many copies sent at once to two instances', async () => {
    const records = [await record(), await record()];
    const now = Date.now();
    const n = nonce();

    const verdicts = await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        records[i % 2].consume('k', n, now, now, WINDOW_MS),
      ),
    );

    expect(verdicts.filter((v) => v === 'accepted')).toHaveLength(1);
    expect(verdicts.filter((v) => v === 'replay')).toHaveLength(39);
  });

  it('should keep a pair exactly as long as its message can pass the freshness check', async () => {
    const r = await record();
    const now = Date.now();
    const past = nonce();
    const future = nonce();

    await r.consume('k', past, now - 100_000, now, WINDOW_MS);
    await r.consume('k', future, now + 60_000, now, WINDOW_MS);

    const pastTtl = await admin.pttl(`${prefix}nonce:k:${past}`);
    const futureTtl = await admin.pttl(`${prefix}nonce:k:${future}`);
    expect(pastTtl).toBeGreaterThan(WINDOW_MS - 100_000 - 5_000);
    expect(pastTtl).toBeLessThanOrEqual(WINDOW_MS - 100_000);
    expect(futureTtl).toBeGreaterThan(WINDOW_MS + 60_000 - 5_000);
    expect(futureTtl).toBeLessThanOrEqual(WINDOW_MS + 60_000);
  });

  it('should refuse as stale what predates a loss of the record, and accept what follows', async () => {
    const r = await record();
    const before = Date.now() - 10_000;
    const n = nonce();
    expect(await r.consume('k', n, before, Date.now(), WINDOW_MS)).toBe(
      'accepted',
    );

    // What a Redis restart without persistence, or a FLUSHALL, does to the record.
    await admin.del(...(await admin.keys(`${prefix}*`)));
    const now = Date.now();

    // Without the "since" mark this replay would be accepted a second time.
    expect(await r.consume('k', n, before, now, WINDOW_MS)).toBe('stale');
    expect(await r.consume('k', nonce(), now, now, WINDOW_MS)).toBe('stale');
    expect(await r.consume('k', nonce(), now + 1, now, WINDOW_MS)).toBe(
      'accepted',
    );
  });

  it('should not move the completeness mark when another instance starts later', async () => {
    const start = Date.now() - 60_000;
    await record({ now: start });
    await record({ now: Date.now() });

    expect(await admin.get(`${prefix}nonce-record-since`)).toBe(String(start));
  });

  it('should fail at once while Redis is unreachable and recover by itself', async () => {
    const { hostname, port } = new URL(TEST_REDIS_URL);
    const proxy = await TcpProxy.start({
      host: hostname,
      port: Number(port || 6379),
    });
    try {
      const r = await record({ url: `redis://127.0.0.1:${proxy.port}/0` });
      const now = Date.now();
      expect(await r.consume('k', nonce(), now, now, WINDOW_MS)).toBe(
        'accepted',
      );

      await proxy.down();
      const started = Date.now();
      await expect(
        r.consume('k', nonce(), now, now, WINDOW_MS),
      ).rejects.toBeInstanceOf(UnavailableError);
      // No offline queue: the refusal does not wait for a reconnect.
      expect(Date.now() - started).toBeLessThan(1_500);

      await proxy.up();
      // ioredis reconnects with backoff (0.5 s first); no restart, no new client.
      const verdict = await waitFor(
        'a pair accepted once Redis is back',
        () =>
          r
            .consume('k', nonce(), Date.now(), Date.now(), WINDOW_MS)
            .catch(() => undefined),
        { timeoutMs: 5_000, intervalMs: 100 },
      );
      expect(verdict).toBe('accepted');
    } finally {
      await proxy.close();
    }
  });
});

describeWithRedisServer(`${RedisRecord.name} and eviction`, () => {
  let redis: PrivateRedis;
  let prefix: string;
  const open: RedisRecord[] = [];

  /** Opens a record on the private Redis; rejects as open() does. */
  async function record(url = redis.url): Promise<RedisRecord> {
    const created = new RedisRecord({
      url,
      prefix,
      commandTimeoutMs: 1_000,
    });
    open.push(created);
    await created.open(Date.now() - WINDOW_MS);
    return created;
  }

  const policy = (value: string) =>
    redis.admin.config('SET', 'maxmemory-policy', value);

  beforeAll(async () => {
    // As the Redis was found: evicting keys that have an expiry, which every pair has.
    redis = await startPrivateRedis(['--maxmemory-policy', 'volatile-lru']);
  });
  beforeEach(async () => {
    prefix = testRedisPrefix();
    await policy('volatile-lru');
    await redis.admin.config('SET', 'maxmemory', '0');
    await redis.admin.flushall();
  });
  afterEach(async () => {
    await Promise.all(open.splice(0).map((r) => r.close()));
  });
  afterAll(async () => {
    await redis.stop();
  });

  it('should refuse to open, at once and in one line naming PAI_REDIS_URL and the setting, on a Redis that may evict keys', async () => {
    const started = performance.now();
    const refusal = await record().then(
      () => undefined,
      (error: unknown) => error,
    );

    expect(refusal).toBeInstanceOf(EvictingRedisError);
    expect(refusal).toBeInstanceOf(ConfigError);
    const message = (refusal as Error).message;
    expect(message).toBe(
      'PAI_REDIS_URL: the Redis it names has maxmemory-policy volatile-lru, which can evict nonce keys and let replays through; set maxmemory-policy noeviction on that Redis',
    );
    expect(message).not.toContain(String(redis.port));
    // Not retried: a configuration does not change by itself.
    expect(performance.now() - started).toBeLessThan(1_000);
    // Nothing written.
    expect(await redis.admin.dbsize()).toBe(0);
  });

  it('should open on noeviction, and fail its check while the policy is another', async () => {
    await policy('noeviction');
    const r = await record();
    await expect(r.assertNoEviction()).resolves.toBeUndefined();

    await policy('allkeys-lru');
    await expect(r.assertNoEviction()).rejects.toMatchObject({
      policy: 'allkeys-lru',
    });

    await policy('noeviction');
    await expect(r.assertNoEviction()).resolves.toBeUndefined();
  });

  it('should read the policy with CONFIG GET where INFO is not allowed, and refuse when neither is', async () => {
    await policy('noeviction');
    const user = (name: string, rules: string[]) =>
      redis.admin.call(
        'ACL',
        'SETUSER',
        name,
        'on',
        '>secret-1',
        '~*',
        ...rules,
      );
    const as = (name: string) =>
      `redis://${name}:secret-1@127.0.0.1:${redis.port}/0`;
    await user('no-info', ['+@all', '-info']);
    await user('no-config', ['+@all', '-config']);
    await user('neither', ['+@all', '-info', '-config']);

    // ioredis says on the console that it skips its ready check where INFO is refused.
    const warn = jest.spyOn(console, 'warn').mockImplementation(() => {});
    await expect(record(as('no-info'))).resolves.toBeDefined();
    await expect(record(as('no-config'))).resolves.toBeDefined();
    const refusal = await record(as('neither')).catch(
      (error: unknown) => error,
    );
    const warned = warn.mock.calls.map(([text]) => String(text));
    warn.mockRestore();
    expect(warned).toEqual([
      expect.stringContaining('NOPERM'),
      expect.stringContaining('NOPERM'),
    ]);
    expect(refusal).toBeInstanceOf(EvictingRedisError);
    expect((refusal as EvictingRedisError).policy).toBeUndefined();
    expect((refusal as Error).message).toMatch(
      /^PAI_REDIS_URL: the Redis it names answers neither INFO memory nor CONFIG GET maxmemory-policy/,
    );
    expect((refusal as Error).message).not.toContain('secret-1');
  });

  it('should fail closed on a full Redis that does not evict: the pair is refused, not accepted unrecorded', async () => {
    await policy('noeviction');
    const r = await record();
    const used = Number(
      /used_memory:(\d+)/.exec(await redis.admin.info('memory'))![1],
    );
    // Below what Redis already uses: every write is refused (OOM), reads still answer.
    await redis.admin.config('SET', 'maxmemory', String(Math.floor(used / 2)));
    const now = Date.now();

    await expect(
      r.consume('k', nonce(), now, now, WINDOW_MS),
    ).rejects.toBeInstanceOf(UnavailableError);
    await expect(r.assertNoEviction()).resolves.toBeUndefined();
  });

  it('should, on a full Redis that evicts, accept a replay of an evicted pair: what the refusal prevents', async () => {
    // Opened while Redis was safe, as if the start-up check had not been made.
    await policy('noeviction');
    const r = await record();
    const now = Date.now();
    const n = nonce();
    expect(await r.consume('k', n, now, now, WINDOW_MS)).toBe('accepted');
    expect(await r.consume('k', n, now, now, WINDOW_MS)).toBe('replay');

    // Redis full, evicting among keys with an expiry: the pairs, never the "since" key.
    await policy('volatile-lru');
    const used = Number(
      /used_memory:(\d+)/.exec(await redis.admin.info('memory'))![1],
    );
    await redis.admin.config('SET', 'maxmemory', String(used + 512 * 1024));
    const filler = 'x'.repeat(8 * 1024);
    let written = 0;
    while ((await redis.admin.exists(`${prefix}nonce:k:${n}`)) === 1) {
      if (written >= 5_000) throw new Error('the pair was never evicted');
      await redis.admin.set(
        `${prefix}filler:${written}`,
        filler,
        'PX',
        WINDOW_MS,
      );
      written += 1;
    }
    expect(await redis.admin.exists(`${prefix}nonce-record-since`)).toBe(1);

    // The same message again, within its window: accepted a second time.
    expect(await r.consume('k', n, now, Date.now(), WINDOW_MS)).toBe(
      'accepted',
    );
    // What the readiness check reports meanwhile.
    await expect(r.assertNoEviction()).rejects.toBeInstanceOf(
      EvictingRedisError,
    );
  });
});
