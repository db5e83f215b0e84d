import { once } from 'node:events';
import { createServer } from 'node:net';

/**
 * A loopback port nothing listens on right now: bound, then released. For a server that must be
 * told its port in advance (HAProxy, a broker), or a client that must meet a refused connection.
 */
export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  server.close();
  await once(server, 'close');
  return port;
}
