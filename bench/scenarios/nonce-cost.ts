import Redis from 'ioredis';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mysqlServer } from '../databases';
import { tcpLoad } from '../load';
import { startService, type Server } from '../processes';
import type { Report } from '../report';
import { okReply, pingRequest, PRESIGN, runId } from '../requests';
import type { Settings } from '../settings';

const REDIS_URL = process.env.PAI_BENCH_REDIS_URL || 'redis://127.0.0.1:6379/0';

/** A connection to the bench's Redis, or why there is none. */
async function openRedis(): Promise<Redis | string> {
  const redis = new Redis(REDIS_URL, {
    lazyConnect: true,
    connectTimeout: 3_000,
    maxRetriesPerRequest: 1,
    retryStrategy: () => null,
  });
  // The connection's own error (ECONNREFUSED, …) says more than the rejection that follows it.
  let connectionError: Error | undefined;
  redis.on('error', (error: Error) => (connectionError ??= error));
  try {
    await redis.connect();
    await redis.ping();
    return redis;
  } catch (error) {
    redis.disconnect();
    const reason = connectionError ?? error;
    return `Redis at ${new URL(REDIS_URL).host} (PAI_BENCH_REDIS_URL) does not answer: ${reason instanceof Error ? reason.message : String(reason)}`;
  }
}

/**
 * What a shared nonce record costs against the single-instance one: one instance on MySQL, signed
 * system.ping at 8x4 (the request whose only write is the nonce), with the record in the database
 * table or in Redis, against the in-memory record.
 */
export async function nonceCostScenarios(
  settings: Settings,
  report: Report,
): Promise<void> {
  // A database of its own: the in-memory record also checks, against the table, every message
  // dated before the last expiry it finds there at start (rows the scale scenarios left would
  // make it write to the table too). It starts first, on an empty table.
  const server = await mysqlServer();
  if (!server.available) throw new Error(server.reason);
  const redis = await openRedis();
  if (typeof redis === 'string') report.skip('noncecost (redis record)', redis);
  const redisPrefix = `pai-bench:${runId}:`;
  const usedMemory = async (client: Redis) =>
    Number(/used_memory:(\d+)/.exec(await client.info('memory'))?.[1]);
  const services: Partial<Record<'memory' | 'database' | 'redis', Server>> = {};
  const dataDirs: string[] = [];
  try {
    const memoryBefore =
      typeof redis === 'string' ? 0 : await usedMemory(redis);
    const kinds: ('memory' | 'database' | 'redis')[] = ['memory', 'database'];
    if (typeof redis !== 'string') kinds.push('redis');
    for (const kind of kinds) {
      const dataDir = mkdtempSync(join(tmpdir(), `pai-bench-nonce-${kind}-`));
      dataDirs.push(dataDir);
      services[kind] = await startService(settings, `pai-nonce-${kind}`, {
        database: server.database,
        dataDir,
        extraEnv: {
          PAI_NONCE_STORE: kind,
          ...(kind === 'redis'
            ? { PAI_REDIS_URL: REDIS_URL, PAI_REDIS_PREFIX: redisPrefix }
            : {}),
        },
      });
    }
    const memory = services.memory!;
    for (const kind of ['database', 'redis'] as const) {
      const service = services[kind];
      if (!service) continue;
      const entry = await report.compare(
        `mysql_nonce_${kind}_vs_memory`,
        `mysql: signed system.ping 8x4, ${kind} nonce record vs in-memory (single instance)`,
        {
          name: `${kind} record`,
          run: () =>
            tcpLoad(
              settings,
              service,
              8,
              4,
              pingRequest,
              okReply,
              PRESIGN.ping,
            ),
        },
        {
          name: 'memory record',
          run: () =>
            tcpLoad(settings, memory, 8, 4, pingRequest, okReply, PRESIGN.ping),
        },
      );
      report.results.ratios[`nonce_${kind}_vs_memory_ping`] =
        entry.ratio.median;
    }
    if (typeof redis !== 'string') {
      // Every message of the Redis runs is still held (their window has not ended): Redis's
      // memory growth over the keys it holds under the bench's prefix.
      let keys = 0;
      let cursor = '0';
      do {
        const [next, batch] = await redis.scan(
          cursor,
          'MATCH',
          `${redisPrefix}nonce:*`,
          'COUNT',
          10_000,
        );
        cursor = next;
        keys += batch.length;
      } while (cursor !== '0');
      const bytes = (await usedMemory(redis)) - memoryBefore;
      report.results.redisNonce = { keys, bytesPerMessage: bytes / keys };
      process.stderr.write(
        `redis nonce record: ${keys} pairs, ${(bytes / keys).toFixed(1)} bytes each\n`,
      );
    }
  } finally {
    if (typeof redis !== 'string') {
      // The bench's pairs would otherwise stay for the window.
      const stream = redis.scanStream({
        match: `${redisPrefix}*`,
        count: 10_000,
      });
      for await (const batch of stream as AsyncIterable<string[]>) {
        if (batch.length > 0) await redis.unlink(...batch);
      }
      await redis.quit();
    }
    for (const service of Object.values(services)) await service.stop();
    dataDirs.forEach((dir) => rmSync(dir, { recursive: true, force: true }));
    await server.drop();
  }
}
