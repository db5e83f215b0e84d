import { INestMicroservice } from '@nestjs/common';
import { Test, type TestingModuleBuilder } from '@nestjs/testing';
import { randomBytes } from 'node:crypto';
import { DataSource } from 'typeorm';
import { AppModule } from '../../src/app.module';
import { createPaiClient } from '../../src/client/pai-client.module';
import type { PaiClient, PaiClientOptions } from '../../src/client/pai-client';
import type { AppConfig } from '../../src/config/config';
import { HttpSideServer } from '../../src/observability/http-side.server';
import { Metrics } from '../../src/observability/metrics';
import { Clock } from '../../src/protocol/clock';
import { createPaiServer } from '../../src/protocol/pai-tcp.server';
import type { TestDatabase } from './test-database';

/** MAC keys the test apps know; fixed per run so a restarted app accepts the same clients. */
export const TEST_KEYS: Record<string, Buffer> = {
  default: randomBytes(32),
  '2026-11': randomBytes(32),
};
export const TEST_PEPPER = randomBytes(32);

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
  app: INestMicroservice;
  port: number;
  /** The HTTP side port, when the config enables it (`http: { host, port: 0 }`). */
  httpPort?: number;
  config: AppConfig;
  clock: TestClock;
  dataSource: DataSource;
  /** A client-module client for this app, closed with the app. */
  client(options?: Partial<PaiClientOptions>): PaiClient;
  close(): Promise<void>;
}

/** The real AppModule behind the real TCP server on a free loopback port. */
export async function startTestApp(
  database: TestDatabase,
  overrides: Partial<AppConfig> = {},
  customize: (builder: TestingModuleBuilder) => TestingModuleBuilder = (
    builder,
  ) => builder,
): Promise<TestApp> {
  const config: AppConfig = {
    production: false,
    transport: { kind: 'tcp' },
    host: '127.0.0.1',
    port: 0,
    database: database.config,
    dataDir: database.dataDir,
    macKeys: new Map(Object.entries(TEST_KEYS)),
    macWindowMs: 300_000,
    sessionTtlMs: 3_600_000,
    // The minimum the service accepts: keeps the suites fast without special-casing tests.
    bcryptCost: 10,
    passwordPepper: TEST_PEPPER,
    maxMessageBytes: 65_536,
    frameTimeoutMs: 5_000,
    idleTimeoutMs: 300_000,
    maxConnections: 1_000,
    drainTimeoutMs: 10_000,
    databaseTimeoutMs: 5_000,
    log: { level: 'silent', format: 'json' },
    nonceStore: database.config.type === 'mysql' ? 'database' : 'memory',
    ...overrides,
  };
  const clock = new TestClock();
  const moduleRef = await customize(
    Test.createTestingModule({ imports: [AppModule.forRoot(config)] })
      .overrideProvider(Clock)
      .useValue(clock),
  ).compile();
  const server = createPaiServer(config);
  const app = moduleRef.createNestMicroservice({
    strategy: server,
    logger: ['error'],
  });
  await app.listen();
  app.get(Metrics).trackTcpServer(server);
  const port = server.boundPort();
  const clients: PaiClient[] = [];
  return {
    app,
    port,
    httpPort: app.get(HttpSideServer).boundPort(),
    config,
    clock,
    dataSource: app.get(DataSource),
    client(options = {}) {
      const client = createPaiClient({
        host: '127.0.0.1',
        port,
        kid: 'default',
        secret: TEST_KEYS.default,
        timeoutMs: 15_000,
        now: () => clock.now(),
        ...options,
      });
      clients.push(client);
      return client;
    },
    async close() {
      await Promise.all(clients.map((client) => client.close()));
      await app.close();
    },
  };
}
