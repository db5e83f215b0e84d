/**
 * Exit 0 when the service answers a signed system.ping with a verified reply, 1 otherwise. Used by
 * the container's HEALTHCHECK: an open port proves little, a verified signed reply proves that
 * the keys, the guard, the nonce record (so the database) and the reply signing all work.
 *
 * Over NATS a ping would be answered by any instance of the queue group, not necessarily this
 * one, so this instance's readiness (/health/ready on the HTTP side port) is read instead.
 */
import { createPaiClient } from '@pai/client/client/pai-client.module';
import { loadConfig, type AppConfig } from './config/config';

async function main(): Promise<number> {
  const config = loadConfig();
  const { transport } = config;
  if (transport.kind === 'nats') return readiness(config);
  const [kid, secret] = [...config.macKeys.entries()][0];
  const host =
    transport.host === '0.0.0.0' || transport.host === '::'
      ? '127.0.0.1'
      : transport.host;
  const client = createPaiClient({
    host,
    port: transport.port,
    kid,
    secret,
    timeoutMs: 5_000,
    tls: transport.tls ? { rejectUnauthorized: false } : undefined,
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

async function readiness(config: AppConfig): Promise<number> {
  if (!config.http) {
    console.error(
      'unhealthy: over NATS the health check reads /health/ready; set PAI_HTTP_PORT',
    );
    return 1;
  }
  const host = ['0.0.0.0', '::'].includes(config.http.host)
    ? '127.0.0.1'
    : config.http.host;
  const response = await fetch(
    `http://${host.includes(':') ? `[${host}]` : host}:${config.http.port}/health/ready`,
    { signal: AbortSignal.timeout(5_000) },
  );
  if (response.status === 200) return 0;
  console.error(`unhealthy: /health/ready answered ${response.status}`);
  return 1;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(`unhealthy: ${(error as Error).message}`);
    process.exit(1);
  },
);
