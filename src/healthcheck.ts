/**
 * Exit 0 when the service answers a signed system.ping with a verified reply, 1 otherwise. Used by
 * the container's HEALTHCHECK: an open port proves little, a verified signed reply proves that
 * the keys, the guard, the nonce record (so the database) and the reply signing all work.
 */
import { createPaiClient } from './client/pai-client.module';
import { loadConfig } from './config/config';

async function main(): Promise<number> {
  const config = loadConfig();
  const [kid, secret] = [...config.macKeys.entries()][0];
  const host =
    config.host === '0.0.0.0' || config.host === '::'
      ? '127.0.0.1'
      : config.host;
  const client = createPaiClient({
    host,
    port: config.port,
    kid,
    secret,
    timeoutMs: 5_000,
    tls: config.tls ? { rejectUnauthorized: false } : undefined,
  });
  try {
    await client.send('system.ping', {});
    return 0;
  } catch (error) {
    console.error(`unhealthy: ${(error as Error).message}`);
    return 1;
  } finally {
    await client.close();
  }
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(`unhealthy: ${(error as Error).message}`);
    process.exit(1);
  },
);
