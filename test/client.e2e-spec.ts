import { Test } from '@nestjs/testing';
import { once } from 'node:events';
import { createServer, type Server, type Socket } from 'node:net';
import { PaiClient, PaiClientModule } from '../src';
import { failure } from './support/failure';
import { TEST_KEYS, startTestApp, type TestApp } from './support/test-app';
import {
  createTestDatabase,
  databaseKind,
  type TestDatabase,
} from './support/test-database';

describe(`${PaiClientModule.name} against the service (${databaseKind})`, () => {
  let database: TestDatabase;
  let service: TestApp;

  beforeEach(async () => {
    database = await createTestDatabase();
    service = await startTestApp(database);
  });

  afterEach(async () => {
    await service.close();
    await database.drop();
  });

  async function clientFromModule(
    options: Partial<Parameters<typeof PaiClientModule.register>[0]> = {},
  ) {
    const moduleRef = await Test.createTestingModule({
      imports: [
        PaiClientModule.register({
          host: '127.0.0.1',
          port: service.port,
          kid: 'default',
          secret: TEST_KEYS.default.toString('base64'),
          ...options,
        }),
      ],
    }).compile();
    await moduleRef.init();
    return { client: moduleRef.get(PaiClient), close: () => moduleRef.close() };
  }

  it('should give another Nest service an injectable, typed client', async () => {
    const { client, close } = await clientFromModule();
    try {
      const user = await client.send('auth.register', {
        username: 'module-user',
        password: 'correct horse',
      });
      const session = await client.send('auth.login', {
        username: 'module-user',
        password: 'correct horse',
      });
      expect(session.userId).toBe(user.userId);
      const reply = await client.send('transactions.create', {
        token: session.token,
        amount: '5.25',
      });
      expect(reply.transaction.amount).toBe('5.25');
    } finally {
      await close();
    }
  });

  it('should learn the clock offset from a signed STALE and retry once', async () => {
    const tenMinutes = 600_000;
    const { client, close } = await clientFromModule({
      now: () => Date.now() - tenMinutes,
    });
    try {
      await expect(client.send('system.ping', {})).resolves.toHaveProperty(
        'serverTime',
      );
      expect(client.clockOffsetMs).toBeGreaterThan(tenMinutes - 10_000);
      expect(client.clockOffsetMs).toBeLessThan(tenMinutes + 10_000);
      // Later calls use the offset straight away.
      await expect(client.send('system.ping', {})).resolves.toHaveProperty(
        'serverTime',
      );
    } finally {
      await close();
    }
  });

  it('should treat the unsigned reply to an unknown key as unverified', async () => {
    const { client, close } = await clientFromModule({ kid: 'not-configured' });
    try {
      const error = await failure(client.send('system.ping', {}));
      expect(error.code).toBe('REPLY_UNVERIFIED');
      expect(error.details.claimedCode).toBe('UNKNOWN_KEY');
    } finally {
      await close();
    }
  });

  it('should time out when the peer never answers', async () => {
    const accepted: Socket[] = [];
    const silent: Server = createServer((socket) => accepted.push(socket));
    silent.listen(0, '127.0.0.1');
    await once(silent, 'listening');
    const address = silent.address();
    const port = typeof address === 'object' && address ? address.port : 0;
    const { client, close } = await clientFromModule({ port, timeoutMs: 200 });
    try {
      expect((await failure(client.send('system.ping', {}))).code).toBe(
        'TIMEOUT',
      );
      // Closing releases the connection for good: Nest only ends its side, and a half-open
      // socket to a silent peer keeps the caller's process alive.
      const socket = (
        client as unknown as { proxy: { unwrap<T>(): T } }
      ).proxy.unwrap<Socket>();
      await close();
      expect(socket.destroyed).toBe(true);
    } finally {
      accepted.forEach((socket) => socket.destroy());
      silent.close();
    }
  });

  it('should report a refused connection as CONNECTION', async () => {
    const probe = createServer();
    probe.listen(0, '127.0.0.1');
    await once(probe, 'listening');
    const address = probe.address();
    const port = typeof address === 'object' && address ? address.port : 0;
    probe.close();
    await once(probe, 'close');
    const { client, close } = await clientFromModule({
      port,
      timeoutMs: 2_000,
    });
    try {
      expect((await failure(client.send('system.ping', {}))).code).toBe(
        'CONNECTION',
      );
    } finally {
      await close();
    }
  });
});
