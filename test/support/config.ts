import {
  defaultNonceRecord,
  loadConfig,
  type AppConfig,
  type CommonConfig,
  type NonceRecordConfig,
} from '../../src/config/config';
import type {
  TcpTransport,
  TransportConfig,
} from '../../src/config/transport-config';
import { TEST_KEYS, TEST_LEDGER_KEY, TEST_PEPPER } from './test-keys';

/**
 * Where a test configuration departs from the service's defaults, on purpose. Everything else
 * is the default of src/config/variables.ts, parsed by loadConfig as at a real start.
 */
const TEST_ENV = {
  // Given, not generated: nothing is written to disk, and the test clients know the keys.
  PAI_MAC_KEYS: Object.entries(TEST_KEYS)
    .map(([kid, secret]) => `${kid}:${secret.toString('base64')}`)
    .join(','),
  PAI_PASSWORD_PEPPER: TEST_PEPPER.toString('base64'),
  PAI_LEDGER_KEY: TEST_LEDGER_KEY.toString('base64'),
  // Rows are sealed a moment after they commit, so the suites see blocks without waiting long.
  PAI_LEDGER_SETTLE_MS: '200',
  PAI_LEDGER_SEAL_INTERVAL_MS: '50',
  // The minimum the service accepts: keeps the suites fast without special-casing tests.
  PAI_BCRYPT_COST: '10',
  // Every test client connects from 127.0.0.1: a cap per address would count them all as one
  // client (the suites that test the cap set it).
  PAI_MAX_CONNECTIONS_PER_ADDRESS: '0',
  // Test output stays readable; the suites about logs capture them on their own.
  PAI_LOG_LEVEL: 'silent',
  PAI_LOG_FORMAT: 'json',
  // A free port for every app, so suites run side by side.
  PAI_PORT: '0',
  // Unit specs open no database from the configuration; startTestApp gives its own.
  PAI_DATA_DIR: '/nonexistent',
};

/** What a test changes in its configuration; what it leaves out comes from the table. */
export type TestOverrides = Partial<Omit<CommonConfig, 'macKeys'>> & {
  /** By key id; default TEST_KEYS. */
  macKeys?: Record<string, Buffer>;
  /** Default: TCP. */
  transport?: TransportConfig;
  /** TCP settings, applied over TCP only: over NATS they do not apply. */
  tcp?: Partial<Omit<TcpTransport, 'kind'>>;
  /** Default: as PAI_NONCE_STORE unset (memory on SQLite over TCP, else the database). */
  nonceRecord?: NonceRecordConfig;
};

/** A complete AppConfig for unit specs and test apps: the one builder of test configurations. */
export function testConfig(overrides: TestOverrides = {}): AppConfig {
  const { macKeys, transport, tcp, nonceRecord, ...common } = overrides;
  const base = loadConfig(TEST_ENV);
  const settings = {
    ...base,
    ...common,
    ...(macKeys && { macKeys: new Map(Object.entries(macKeys)) }),
  };
  const chosen = transport ?? base.transport;
  if (chosen.kind === 'tcp') {
    return {
      ...settings,
      transport: { ...chosen, ...tcp },
      nonceRecord: nonceRecord ?? defaultNonceRecord(settings.database, chosen),
    };
  }
  const record = nonceRecord ?? defaultNonceRecord(settings.database, chosen);
  if (record.kind === 'memory') {
    // As loadConfig refuses it: a queue group's instances must share the replay record.
    throw new Error('a test app over NATS needs a shared nonce record');
  }
  return { ...settings, transport: chosen, nonceRecord: record };
}
