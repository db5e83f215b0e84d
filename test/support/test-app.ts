import { INestMicroservice } from '@nestjs/common';
import { Test, type TestingModuleBuilder } from '@nestjs/testing';
import { randomBytes } from 'node:crypto';
import { DataSource } from 'typeorm';
import { AppModule } from '../../src/app.module';
import {
  createPaiClient,
  type PaiClientModuleOptions,
} from '@pai/client/client/pai-client.module';
import type {
  PaiClient,
  PaiClientOptions,
} from '@pai/client/client/pai-client';
import type { AppConfig } from '../../src/config/config';
import { SidePort } from '../../src/observability/side-port';
import { Metrics } from '../../src/observability/metrics';
import { Clock } from '../../src/common/clock';
import {
  parseTransportConfig,
  type TransportConfig,
} from '../../src/config/transport-config';
import {
  createServer,
  type ProtocolServer,
} from '../../src/transport/create-server';
import { TcpServer } from '../../src/transport/tcp.server';
import {
  RawClient,
  replyVerifies,
  type RawTransport,
  type SentRequest,
  type WireReply,
} from './raw-client';
import { RawNatsClient } from './raw-nats-client';
import { testConfig, type TestOverrides } from './config';
import { nestLog } from './nest-log';
import { describeIf, itIf } from './skip';
import type { TestDatabase } from './test-database';
import { TEST_KEYS, TEST_PEPPER } from './test-keys';

/**
 * `PAI_E2E_TRANSPORT=nats` (npm run test:nats) runs the suites over NATS: every test app is then
 * two instances in one queue group on one database, behind a subject prefix of its own.
 */
export const e2eTransport: 'tcp' | 'nats' =
  process.env.PAI_E2E_TRANSPORT === 'nats' ? 'nats' : 'tcp';
const E2E_NATS_SERVERS =
  process.env.PAI_E2E_NATS_SERVERS ?? 'nats://127.0.0.1:4222';

/**
 * `describe` for suites about the TCP transport itself: `describeTcpOnly(reason)(name, body)`.
 * Over NATS the suite is skipped and the reason shows in its name.
 */
export function describeTcpOnly(
  reason: string,
): (name: string, body: () => void) => void {
  return describeIf(e2eTransport === 'tcp', `TCP only: ${reason}`);
}

/** `it` for a test about the TCP transport itself; over NATS it is skipped, saying why. */
export const itTcpOnly = (
  name: string,
  reason: string,
  fn: () => Promise<unknown>,
): void => itIf(e2eTransport === 'tcp', `TCP only: ${reason}`)(name, fn);

export { TEST_KEYS, TEST_PEPPER };

/**
 * Whether `reply` carries the MAC the service owes this request: over its pattern, kid, nonce and
 * MAC, under the suite's key for that kid (verified by the raw client's independent code).
 */
export function signedFor(
  reply: WireReply,
  pattern: string,
  envelope: SentRequest,
): boolean {
  return replyVerifies(reply, pattern, envelope, TEST_KEYS[envelope.kid]);
}

/** A clock the tests move forward instead of sleeping. */
export class TestClock extends Clock {
  offsetMs = 0;
  now(): number {
    return Date.now() + this.offsetMs;
  }
  advance(ms: number): void {
    this.offsetMs += ms;
  }
}

export interface TestApp {
  /** The first instance. */
  app: INestMicroservice;
  /** Every instance: one over TCP, two over NATS (same config, database and queue group). */
  apps: INestMicroservice[];
  servers: ProtocolServer[];
  /** The TCP port; 0 over NATS, where there is none. */
  port: number;
  /** The HTTP side port, when the config enables it (`http: { host, port: 0 }`). */
  httpPort?: number;
  config: AppConfig;
  clock: TestClock;
  dataSource: DataSource;
  /** A client-module client for this app, closed with the app. */
  client(options?: Partial<PaiClientOptions>): PaiClient;
  /** A raw client for hand-built packets (a TCP connection, or a NATS connection), closed with the app. */
  raw(): Promise<RawTransport>;
  /** Stops one instance (as SIGTERM would: drained), leaving the others running. */
  closeInstance(index: number): Promise<void>;
  /** Closes its clients, then every instance still running; closing again does nothing. */
  close(): Promise<void>;
}

/**
 * The real AppModule behind the real TCP server on a free loopback port; with
 * PAI_E2E_TRANSPORT=nats, two instances of it behind the real NATS server.
 */
export async function startTestApp(
  database: TestDatabase,
  overrides: TestOverrides = {},
  customize: (builder: TestingModuleBuilder) => TestingModuleBuilder = (
    builder,
  ) => builder,
): Promise<TestApp> {
  const config = testConfig({
    database: database.config,
    dataDir: database.dataDir,
    ...(e2eTransport === 'nats' && { transport: natsTransport() }),
    ...overrides,
  });
  const nats = config.transport.kind === 'nats' ? config.transport : undefined;
  if (nats && database.config.type !== 'mysql') {
    // Two instances need a database both can write: the suites' SQLite file is one process's.
    throw new Error(
      'the NATS end-to-end run needs MySQL/MariaDB: use npm run test:nats (sets DATABASE_URL)',
    );
  }
  // One clock for every instance, as machines kept in sync would share.
  const clock = new TestClock();
  const apps: INestMicroservice[] = [];
  const servers: ProtocolServer[] = [];
  for (let instance = 0; instance < (nats ? 2 : 1); instance += 1) {
    const moduleRef = await customize(
      Test.createTestingModule({ imports: [AppModule.forRoot(config)] })
        .setLogger(nestLog)
        .overrideProvider(Clock)
        .useValue(clock),
    ).compile();
    const server = createServer(config);
    // Nest's own log lines (an INTERNAL's error id, a refused handshake) go to the test's capture.
    const app = moduleRef.createNestMicroservice({
      strategy: server,
      logger: nestLog,
    });
    await app.listen();
    app.get(Metrics).trackServer(server);
    apps.push(app);
    servers.push(server);
  }
  const [app] = apps;
  const port = servers[0] instanceof TcpServer ? servers[0].boundPort() : 0;
  const clients: PaiClient[] = [];
  const raws: RawTransport[] = [];
  const closed = new Set<INestMicroservice>();
  let finished = false;
  return {
    app,
    apps,
    servers,
    port,
    httpPort: app.get(SidePort).boundPort(),
    config,
    clock,
    dataSource: app.get(DataSource),
    client(options = {}) {
      const common = {
        kid: 'default',
        secret: TEST_KEYS.default,
        timeoutMs: 15_000,
        now: () => clock.now(),
      };
      const target: PaiClientModuleOptions = nats
        ? {
            ...common,
            ...withoutTcpOptions(options),
            transport: 'nats',
            servers: nats.servers,
            subjectPrefix: nats.subjectPrefix,
          }
        : { ...common, host: '127.0.0.1', port, ...options };
      const client = createPaiClient(target);
      clients.push(client);
      return client;
    },
    async raw() {
      const raw = nats
        ? await RawNatsClient.connect(nats.servers, nats.subjectPrefix)
        : await RawClient.connect(port);
      raws.push(raw);
      return raw;
    },
    async closeInstance(index) {
      closed.add(apps[index]);
      await apps[index].close();
    },
    async close() {
      if (finished) return;
      finished = true;
      raws.forEach((raw) => raw.close());
      await Promise.all(clients.map((client) => client.close()));
      // Closed one after the other, as instances of a deployment are stopped.
      for (const each of apps) if (!closed.has(each)) await each.close();
    },
  };
}

/** NATS on the test broker, with a subject prefix per test app: parallel suites never meet. */
function natsTransport(): TransportConfig {
  return parseTransportConfig({
    PAI_TRANSPORT: 'nats',
    PAI_NATS_SERVERS: E2E_NATS_SERVERS,
    PAI_NATS_SUBJECT_PREFIX: `pai-e2e-${randomBytes(6).toString('hex')}.`,
  });
}

function withoutTcpOptions(
  options: Partial<PaiClientOptions>,
): Omit<Partial<PaiClientOptions>, 'host' | 'port' | 'tls'> {
  const rest = { ...options };
  delete rest.host;
  delete rest.port;
  delete rest.tls;
  return rest;
}
