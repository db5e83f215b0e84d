import { createServer, type Server } from 'node:net';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import type { DataSourceOptions } from 'typeorm';
import { connectWithRetry } from './connect';

class StopRetrying extends Error {}

describe(connectWithRetry.name, () => {
  let refusing: Server;
  let port: number;

  beforeAll(async () => {
    // A port that accepts and closes at once: the driver sees the server go away mid-handshake.
    refusing = createServer((socket) => socket.destroy());
    refusing.listen(0, '127.0.0.1');
    await once(refusing, 'listening');
    port = (refusing.address() as { port: number }).port;
  });

  afterAll(() => refusing.close());

  it('should retry an unreachable MySQL server with exponential backoff up to 30 s', async () => {
    const delays: number[] = [];
    const sleep = (ms: number) => {
      delays.push(ms);
      return delays.length < 9
        ? Promise.resolve()
        : Promise.reject(new StopRetrying());
    };
    const options: DataSourceOptions = {
      type: 'mysql',
      url: `mysql://root@127.0.0.1:${port}/pai`,
      connectTimeout: 1_000,
    };

    await expect(connectWithRetry(options, sleep)).rejects.toBeInstanceOf(
      StopRetrying,
    );
    expect(delays).toEqual([
      500, 1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000, 30_000,
    ]);
  });

  it('should not retry the embedded database: its file opens now or never', async () => {
    const sleep = jest.fn(() => Promise.resolve());
    // A directory where the database file should be: SQLITE_CANTOPEN.
    const options: DataSourceOptions = {
      type: 'better-sqlite3',
      database: tmpdir(),
    };

    await expect(connectWithRetry(options, sleep)).rejects.toBeDefined();
    expect(sleep).not.toHaveBeenCalled();
  });
});
