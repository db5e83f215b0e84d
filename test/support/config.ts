import type { AppConfig } from '../../src/config/config';

/** A complete AppConfig for tests: the minimum bcrypt cost, no files, keys given by the caller. */
export function testConfig(
  macKeys: Record<string, Buffer>,
  overrides: Partial<AppConfig> = {},
): AppConfig {
  return {
    production: false,
    transport: { kind: 'tcp' },
    host: '127.0.0.1',
    port: 0,
    database: { type: 'sqlite', file: ':memory:' },
    dataDir: '/nonexistent',
    macKeys: new Map(Object.entries(macKeys)),
    macWindowMs: 300_000,
    sessionTtlMs: 3_600_000,
    bcryptCost: 10,
    passwordPepper: Buffer.alloc(32, 3),
    maxMessageBytes: 65_536,
    frameTimeoutMs: 5_000,
    idleTimeoutMs: 300_000,
    maxConnections: 1_000,
    maxConnectionsPerAddress: 0,
    maxUnverifiedInRow: 3,
    authTimeoutMs: 5_000,
    drainTimeoutMs: 10_000,
    databaseTimeoutMs: 5_000,
    log: { level: 'silent', format: 'json' },
    nonceStore: 'memory',
    ...overrides,
  };
}
