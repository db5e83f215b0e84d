import { withTimeout } from '../common/deadline';
import { UnavailableError } from '../common/unavailable';
import { Logger } from '@nestjs/common';
import Redis, { ReplyError } from 'ioredis';
import { backoffMs, waitUntilUp } from '../common/wait-until-up';
import { ConfigError } from '@pai/client/config/config.error';

/** What the record decided about one (kid, nonce, ts). */
export type RedisVerdict = 'accepted' | 'replay' | 'stale';

/**
 * One round trip, atomic on the server, so copies of one message arriving at several instances at
 * once cannot both pass (docs/protocol.md 3, step 5).
 *
 * KEYS[1] holds the instant from which the record is complete ("since"). It is written when the
 * service first starts against this Redis and has no expiry; if it is missing later, Redis lost its
 * data (restart without persistence, FLUSHALL, failover to an empty replica) and pairs accepted
 * before that moment are no longer known. The script then sets it to now, and every message dated
 * at or before it is refused as STALE instead of being accepted a second time: the same rule the
 * in-memory record applies after a process restart. A client re-signs with a fresh ts and goes
 * through. A loss of some pairs only (eviction, a failover to a lagging replica, a restart from an
 * old snapshot) keeps the key and is not detected: docs/redis-nonce-record.md says what to
 * configure against each, and eviction is refused outright (SAFE_EVICTION_POLICY).
 *
 * KEYS[2] is the pair; SET NX PX decides and lets Redis forget it when the message can no longer
 * pass the freshness check anyway, so the record stays bounded by the window without a purge job.
 */
const CONSUME_SCRIPT = `
local since = redis.call('GET', KEYS[1])
if not since then
  redis.call('SET', KEYS[1], ARGV[1])
  since = ARGV[1]
end
if tonumber(ARGV[2]) <= tonumber(since) then return 2 end
if redis.call('SET', KEYS[2], '1', 'PX', ARGV[3], 'NX') then return 0 end
return 1
`;

const VERDICTS: Record<number, RedisVerdict> = {
  0: 'accepted',
  1: 'replay',
  2: 'stale',
};

type ConsumingRedis = Redis & {
  paiConsume(
    sinceKey: string,
    pairKey: string,
    now: string,
    ts: string,
    ttlMs: string,
  ): Promise<number>;
};

export interface RedisNonceRecordOptions {
  url: string;
  /** Prefix of every key, so deployments (and test runs) can share one Redis. */
  prefix: string;
  /** Each command answers within this time or fails (the service answers UNAVAILABLE). */
  commandTimeoutMs: number;
}

/**
 * The one maxmemory-policy under which Redis never drops a key before its expiry. Under any other,
 * a Redis that fills up evicts pairs still within their window; under the volatile-* policies it
 * keeps the "since" key (it has no expiry), so nothing marks the loss and a replay of an evicted
 * pair is accepted.
 */
export const SAFE_EVICTION_POLICY = 'noeviction';

/**
 * Redis's maxmemory-policy, from `INFO memory` (allowed by managed services that disable CONFIG),
 * else from `CONFIG GET`; undefined when Redis refuses both (an ACL, a renamed command) or reports
 * neither. A failure to reach Redis is thrown.
 */
async function evictionPolicy(redis: Redis): Promise<string | undefined> {
  const refused = (error: unknown) => {
    if (error instanceof ReplyError) return undefined;
    throw error;
  };
  const info = await redis.info('memory').catch(refused);
  const fromInfo = info && /^maxmemory_policy:([a-z-]+)\r?$/m.exec(info);
  if (fromInfo) return fromInfo[1];
  const config: unknown = await redis
    .config('GET', 'maxmemory-policy')
    .catch(refused);
  const value: unknown = Array.isArray(config) ? config[1] : undefined;
  return typeof value === 'string' && /^[a-z-]+$/.test(value)
    ? value
    : undefined;
}

/**
 * The start-up refusal when Redis may evict pairs, or cannot tell: PAI_REDIS_URL names a Redis
 * that is not safe to keep the record in.
 */
export class EvictingRedisError extends ConfigError {
  constructor(readonly policy: string | undefined) {
    super(
      'PAI_REDIS_URL',
      policy === undefined
        ? `the Redis it names answers neither INFO memory nor CONFIG GET maxmemory-policy, so PAI cannot check that it never evicts nonce keys; allow INFO to PAI's Redis user (ACL +info)`
        : `the Redis it names has maxmemory-policy ${policy}, which can evict nonce keys and let replays through; set maxmemory-policy ${SAFE_EVICTION_POLICY} on that Redis`,
    );
  }
}

/** Redis cannot be reached or does not answer in time: the request is refused UNAVAILABLE. */
function unavailable(cause: unknown): UnavailableError {
  const code = (cause as NodeJS.ErrnoException | undefined)?.code;
  return new UnavailableError('nonce record (Redis)', code ?? 'error', {
    cause,
  });
}

/**
 * The nonce record in Redis (`PAI_NONCE_STORE=redis`), shared by every instance that uses the same
 * Redis and prefix. Optional: the database record needs nothing but MySQL.
 *
 * Fails closed: while Redis is down, commands fail at once (no offline queue) and the guard answers
 * UNAVAILABLE; nothing is accepted unchecked. The client reconnects by itself.
 */
export class RedisRecord {
  private readonly logger = new Logger(RedisRecord.name);
  private readonly redis: ConsumingRedis;
  private readonly sinceKey: string;

  constructor(private readonly options: RedisNonceRecordOptions) {
    this.sinceKey = `${options.prefix}nonce-record-since`;
    this.redis = new Redis(options.url, {
      lazyConnect: true,
      // Messages read in one turn of the event loop share one write to Redis.
      enableAutoPipelining: true,
      // A command issued while disconnected fails at once instead of waiting in a queue: the
      // request it belongs to answers UNAVAILABLE rather than hanging.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      commandTimeout: options.commandTimeoutMs,
      connectTimeout: options.commandTimeoutMs,
      // Reconnect for ever with backoff, as the service does for MySQL: Redis coming back must
      // not need a restart.
      retryStrategy: backoffMs,
    }) as ConsumingRedis;
    this.redis.defineCommand('paiConsume', {
      numberOfKeys: 2,
      lua: CONSUME_SCRIPT,
    });
    // ioredis emits 'error' for every failed reconnect; unhandled, that would crash the process.
    let failures = 0;
    this.redis.on('error', (error: NodeJS.ErrnoException) => {
      failures += 1;
      // Sampled, and the code only: the message can carry the URL.
      if ((failures & (failures - 1)) === 0) {
        this.logger.warn(
          `Redis nonce record: connection error ${error.code ?? error.name} (${failures} so far)`,
        );
      }
    });
    this.redis.on('ready', () => {
      if (failures > 0) this.logger.log('Redis nonce record: connected again');
      failures = 0;
    });
  }

  /**
   * Connects, retrying with backoff until Redis answers (the orchestrator decides how long is too
   * long), refuses (EvictingRedisError, at once) a Redis that may evict keys, and marks the record
   * complete from `now` if this Redis has never held it.
   */
  async open(now: number): Promise<void> {
    await waitUntilUp(
      {
        name: 'Redis nonce record',
        logger: this.logger,
        // Whatever else stops it, Redis is retried: the record is useless until it answers. Its
        // configuration will not change by itself.
        isTransient: (error) => !(error instanceof EvictingRedisError),
        // The code only: the message can carry the URL.
        describe: (error) =>
          (error as NodeJS.ErrnoException).code ?? (error as Error).name,
      },
      async () => {
        if (this.redis.status === 'wait') await this.redis.connect();
        await this.waitUntilReady();
        await this.assertNoEviction();
        await this.redis.set(this.sinceKey, String(now), 'NX');
      },
    );
  }

  private async waitUntilReady(): Promise<void> {
    if (this.redis.status === 'ready') return;
    let onReady = () => {};
    const ready = new Promise<void>((resolve) => {
      onReady = resolve;
      this.redis.once('ready', onReady);
    });
    try {
      await withTimeout(ready, this.options.commandTimeoutMs, () =>
        Object.assign(new Error('not ready'), { code: 'ETIMEDOUT' }),
      );
    } finally {
      this.redis.off('ready', onReady);
    }
  }

  async consume(
    kid: string,
    nonce: string,
    ts: number,
    now: number,
    windowMs: number,
  ): Promise<RedisVerdict> {
    // Kept until the message's own expiry (ts + window) and at least 1 ms: a future-dated message
    // stays recorded for as long as it could pass the freshness check.
    const ttlMs = Math.max(ts + windowMs - now, 1);
    if (this.redis.status !== 'ready') {
      // Refused before a command is made: ioredis would fail it anyway (no offline queue).
      throw unavailable(
        Object.assign(new Error('not connected'), { code: 'ECONNREFUSED' }),
      );
    }
    let verdict: number;
    try {
      verdict = await this.redis.paiConsume(
        this.sinceKey,
        // kid and nonce are checked by the envelope rules (no ':' in a kid), so this is unambiguous.
        `${this.options.prefix}nonce:${kid}:${nonce}`,
        String(now),
        String(ts),
        String(ttlMs),
      );
    } catch (error) {
      throw unavailable(error);
    }
    const result = VERDICTS[verdict];
    if (!result) throw new Error(`unexpected nonce script result ${verdict}`);
    return result;
  }

  /**
   * Throws EvictingRedisError unless Redis reports maxmemory-policy noeviction; a Redis that
   * cannot be reached fails as any command does. At start, and for the readiness check (the policy
   * can be changed at run time).
   */
  async assertNoEviction(): Promise<void> {
    const policy = await evictionPolicy(this.redis);
    if (policy !== SAFE_EVICTION_POLICY) throw new EvictingRedisError(policy);
  }

  async close(): Promise<void> {
    // QUIT only on a live connection; otherwise stop the reconnect loop at once.
    if (this.redis.status === 'ready') {
      try {
        await this.redis.quit();
        return;
      } catch {
        // Fall through: the connection broke while quitting.
      }
    }
    this.redis.disconnect();
  }
}
