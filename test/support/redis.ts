import { randomBytes } from 'node:crypto';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import Redis from 'ioredis';
import { freePort } from './ports';
import { describeIf } from './skip';
import { waitFor } from './wait-for';

/** The machine's Redis (these machines run one at 127.0.0.1:6379), or PAI_TEST_REDIS_URL. */
export const TEST_REDIS_URL =
  process.env.PAI_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379/0';

/** A key prefix of its own per suite, so parallel suites never share a record. */
export function testRedisPrefix(): string {
  return `pai-test:${randomBytes(6).toString('hex')}:`;
}

/**
 * Whether the test Redis answers, decided synchronously so a suite can pick `describe` or
 * `describe.skip` at load time. Suites skip, saying why, without it, except in CI
 * (PAI_REDIS_REQUIRED=1), where a missing Redis is a failure rather than a silent skip.
 */
export function redisReachable(): boolean {
  const { hostname, port } = new URL(TEST_REDIS_URL);
  const probe = spawnSync(
    process.execPath,
    [
      '-e',
      `const s=require('node:net').connect(${Number(port || 6379)},${JSON.stringify(hostname)});` +
        `s.setTimeout(1000,()=>process.exit(1));s.on('error',()=>process.exit(1));` +
        `s.on('connect',()=>{s.write('PING\\r\\n')});s.on('data',d=>process.exit(String(d).startsWith('+PONG')?0:1));`,
    ],
    { timeout: 3_000 },
  );
  const up = probe.status === 0;
  if (!up && process.env.PAI_REDIS_REQUIRED === '1') {
    throw new Error(
      `Redis does not answer at ${TEST_REDIS_URL} and PAI_REDIS_REQUIRED=1`,
    );
  }
  return up;
}

/** `describe` when the test Redis answers, else a block skipped saying so. */
export const describeWithRedis = describeIf(
  redisReachable(),
  `needs Redis at ${TEST_REDIS_URL} (PAI_TEST_REDIS_URL)`,
);

export interface PrivateRedis {
  /** redis://127.0.0.1:<port>/0 */
  readonly url: string;
  readonly port: number;
  /** A connection of the test's own, for CONFIG SET, INFO, ACL. */
  readonly admin: Redis;
  stop(): Promise<void>;
}

const REDIS_SERVER = 'redis-server';

/**
 * A redis-server of the suite's own on a free loopback port, without persistence, started with
 * `args` (e.g. `--maxmemory-policy volatile-lru`): for configurations the shared Redis must not be
 * put in. Resolves once it accepts connections.
 */
export async function startPrivateRedis(
  args: string[] = [],
): Promise<PrivateRedis> {
  const port = await freePort();
  const child = spawn(
    REDIS_SERVER,
    [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--save',
      '',
      '--appendonly',
      'no',
      ...args,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let log = '';
  const collect = (chunk: Buffer) => (log += chunk.toString());
  child.stdout.on('data', collect);
  child.stderr.on('data', collect);
  try {
    await waitFor(
      () => `redis-server to start:\n${log}`,
      () => {
        if (child.exitCode !== null) throw new Error(`redis-server: ${log}`);
        return log.includes('Ready to accept connections');
      },
    );
  } catch (error) {
    child.kill('SIGKILL');
    throw error;
  }
  const url = `redis://127.0.0.1:${port}/0`;
  const admin = new Redis(url);
  return {
    url,
    port,
    admin,
    async stop() {
      admin.disconnect();
      if (child.exitCode !== null) return;
      const exited = once(child, 'exit');
      child.kill('SIGKILL');
      await exited;
    },
  };
}

/** `describe` when redis-server can be started here (see redisReachable for CI). */
export const describeWithRedisServer = describeIf(
  ((): boolean => {
    const found = spawnSync(REDIS_SERVER, ['--version'], { timeout: 3_000 });
    if (found.status === 0) return true;
    if (process.env.PAI_REDIS_REQUIRED === '1') {
      throw new Error(
        `${REDIS_SERVER} is not installed and PAI_REDIS_REQUIRED=1`,
      );
    }
    return false;
  })(),
  `needs ${REDIS_SERVER} installed, to start a Redis of its own`,
);
