import { Test } from '@nestjs/testing';
import { once } from 'node:events';
import { createServer, type Server, type Socket } from 'node:net';
import { connect as natsConnect } from '@nats-io/transport-node';
import {
  PaiClient,
  PaiClientModule,
  type PaiClientModuleOptions,
  type PaiClientOptions,
} from '@pai/client';
import type { NatsTransport } from '../../src/config/transport-config';
import { failure } from '../support/failure';
import { nestLog } from '../support/nest-log';
import { freePort } from '../support/ports';
import { itIf } from '../support/skip';
import { TEST_KEYS, e2eTransport, itTcpOnly } from '../support/test-app';
import { databaseKind } from '../support/test-database';
import { useTestApp } from '../support/use-test-app';

describe(`${PaiClientModule.name} against the service (${databaseKind}, ${e2eTransport})`, () => {
  const service = useTestApp();

  /** The service's transport, as another Nest service would register it. */
  function target(): PaiClientModuleOptions {
    const common = {
      kid: 'default',
      secret: TEST_KEYS.default.toString('base64'),
    };
    const { transport } = service().config;
    return transport.kind === 'nats'
      ? {
          ...common,
          transport: 'nats',
          servers: transport.servers,
          subjectPrefix: transport.subjectPrefix,
        }
      : { ...common, host: '127.0.0.1', port: service().port };
  }

  async function clientFromModule(
    options: Partial<PaiClientOptions> | PaiClientModuleOptions = {},
  ) {
    const moduleRef = await Test.createTestingModule({
      imports: [
        PaiClientModule.register({
          ...target(),
          ...options,
        }),
      ],
    })
      .setLogger(nestLog)
      .compile();
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

  it('should treat the unsigned reply to an unknown key as unverified, never as an outcome', async () => {
    const { client, close } = await clientFromModule({
      kid: 'not-configured',
      timeoutMs: 1_500,
    });
    try {
      const error = await failure(client.send('system.ping', {}));
      if (e2eTransport === 'tcp') {
        expect(error.code).toBe('REPLY_UNVERIFIED');
        expect(error.details.claimedCode).toBe('UNKNOWN_KEY');
      } else {
        // Anyone may publish into a NATS inbox: what does not verify is dropped and the client
        // waits on for the genuine reply, saying at the end what it ignored.
        expect(error.code).toBe('TIMEOUT');
        expect(error.details.unverifiedReplies).toBe(1);
        expect(error.message).toContain('(UNKNOWN_KEY) ignored');
      }
      expect(error.message).toContain('key id "not-configured"');
    } finally {
      await close();
    }
  });

  itTcpOnly(
    'should time out when the peer never answers',
    'a silent TCP peer; the NATS case is below',
    async () => {
      const accepted: Socket[] = [];
      const silent: Server = createServer((socket) => accepted.push(socket));
      silent.listen(0, '127.0.0.1');
      await once(silent, 'listening');
      const address = silent.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      const { client, close } = await clientFromModule({
        port,
        timeoutMs: 200,
      });
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
    },
  );

  itTcpOnly(
    'should report a refused connection as CONNECTION',
    'a closed TCP port; the NATS case is below',
    async () => {
      const port = await freePort();
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
    },
  );

  describe('over NATS', () => {
    const natsOnly = itIf(
      e2eTransport === 'nats',
      'NATS only: npm run test:nats',
    );
    const nats = () => service().config.transport as NatsTransport;

    natsOnly(
      'should time out when a subscriber takes the request and never answers',
      async () => {
        // A stray member of the queue group: it receives requests and drops them.
        const stray = await natsConnect({ servers: [...nats().servers] });
        const prefix = `pai-e2e-silent-${Date.now()}.`;
        stray.subscribe(`${prefix}>`, { callback: () => undefined });
        await stray.flush();
        const { client, close } = await clientFromModule({
          ...target(),
          subjectPrefix: prefix,
          timeoutMs: 300,
        } as PaiClientModuleOptions);
        try {
          expect((await failure(client.send('system.ping', {}))).code).toBe(
            'TIMEOUT',
          );
        } finally {
          await close();
          await stray.close();
        }
      },
    );

    natsOnly(
      'should report "no responders" (no instance on that prefix) as CONNECTION, at once',
      async () => {
        const { client, close } = await clientFromModule({
          ...target(),
          subjectPrefix: 'pai-e2e-nobody.',
          timeoutMs: 10_000,
        } as PaiClientModuleOptions);
        try {
          const started = Date.now();
          const error = await failure(client.send('system.ping', {}));
          expect(error.code).toBe('CONNECTION');
          expect(error.message).toContain('no responders');
          expect(Date.now() - started).toBeLessThan(5_000);
        } finally {
          await close();
        }
      },
    );

    natsOnly('should report an unreachable broker as CONNECTION', async () => {
      const port = await freePort();
      const { client, close } = await clientFromModule({
        ...target(),
        servers: `nats://127.0.0.1:${port}`,
        timeoutMs: 5_000,
      } as PaiClientModuleOptions);
      try {
        expect((await failure(client.send('system.ping', {}))).code).toBe(
          'CONNECTION',
        );
      } finally {
        await close();
      }
    });
  });
});
