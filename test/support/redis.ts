import { randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';

/** The machine's Redis (these machines run one at 127.0.0.1:6379), or PAI_TEST_REDIS_URL. */
export const TEST_REDIS_URL =
  process.env.PAI_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379/0';

/** A key prefix of its own per suite, so parallel suites never share a record. */
export function testRedisPrefix(): string {
  return `pai-test:${randomBytes(6).toString('hex')}:`;
}

/**
 * Whether the test Redis answers, decided synchronously so a suite can pick `describe` or
 * `describe.skip` at load time. Suites skip visibly without it, except in CI
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

/** `describe` when the test Redis answers, else a visibly skipped block. */
export const describeWithRedis = redisReachable() ? describe : describe.skip;
