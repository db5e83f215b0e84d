import { randomBytes } from 'node:crypto';
import Redis from 'ioredis';
import {
  describeWithRedis,
  TEST_REDIS_URL,
  testRedisPrefix,
} from '../../test/support/redis';
import { TcpProxy } from '../../test/support/tcp-proxy';
import {
  NonceRecordUnavailableError,
  RedisNonceRecord,
} from './redis-nonce-record';

const WINDOW_MS = 300_000;
const nonce = () => randomBytes(16).toString('base64url');

describeWithRedis(RedisNonceRecord.name, () => {
  const open: RedisNonceRecord[] = [];
  let admin: Redis;
  let prefix: string;

  async function record(
    options: Partial<{ url: string; prefix: string; now: number }> = {},
  ): Promise<RedisNonceRecord> {
    const created = new RedisNonceRecord({
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
      ).rejects.toBeInstanceOf(NonceRecordUnavailableError);
      // No offline queue: the refusal does not wait for a reconnect.
      expect(Date.now() - started).toBeLessThan(1_500);

      await proxy.up();
      // ioredis reconnects with backoff (0.5 s first); no restart, no new client.
      let verdict: string | undefined;
      for (let i = 0; i < 50 && verdict === undefined; i += 1) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        verdict = await r
          .consume('k', nonce(), Date.now(), Date.now(), WINDOW_MS)
          .catch(() => undefined);
      }
      expect(verdict).toBe('accepted');
    } finally {
      await proxy.close();
    }
  });
});
