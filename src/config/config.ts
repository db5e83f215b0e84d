import { ConfigError } from '@pai/client/config/config.error';
import { parseDataDir } from '@pai/client/config/defaults';
import { parseDatabaseConfig, type DatabaseConfig } from './database-config';
import {
  choice,
  envOrFile,
  integer,
  isOn,
  optionalChoice,
  optionalInteger,
  sourceOf,
  text,
} from './environment';
import { readLedgerKey, readSecrets } from './secrets';
import {
  parseTransportConfig,
  type NatsTransport,
  type TcpTransport,
  type TransportConfig,
} from './transport-config';
import type { ChoiceOf, Env } from './variables';

export const APP_CONFIG = Symbol('APP_CONFIG');

export type LogLevel = ChoiceOf<'PAI_LOG_LEVEL'>;

export interface LogConfig {
  readonly level: LogLevel;
  readonly format: ChoiceOf<'PAI_LOG_FORMAT'>;
}

/** A nonce record every instance on the same database, or the same Redis, shares. */
export type SharedNonceRecord =
  | { readonly kind: 'database' }
  | {
      readonly kind: 'redis';
      /** redis:// or rediss:// URL; may hold a password, so it is never logged. */
      readonly url: string;
      /** Prefix of every key PAI writes, so deployments can share one Redis. */
      readonly prefix: string;
    };

/**
 * Where accepted (kid, nonce) pairs are kept (PAI_NONCE_STORE): in this process's memory (one
 * instance only) or shared by every instance.
 */
export type NonceRecordConfig = { readonly kind: 'memory' } | SharedNonceRecord;

/** How this instance takes part in sealing the ledger (docs/ledger.md). */
export interface LedgerConfig {
  /** PAI_LEDGER_SETTLE_MS */
  readonly settleMs: number;
  /** PAI_LEDGER_SEAL_INTERVAL_MS; 0: this instance never seals. */
  readonly sealIntervalMs: number;
}

/** What every deployment has, whatever its transport and nonce record. */
export interface CommonConfig {
  /** NODE_ENV=production */
  readonly production: boolean;
  readonly database: DatabaseConfig;
  readonly dataDir: string;
  readonly macKeys: ReadonlyMap<string, Buffer>;
  readonly passwordPepper: Buffer;
  readonly ledgerKey: Buffer;
  /** PAI_MAC_WINDOW_MS */
  readonly macWindowMs: number;
  /** PAI_SESSION_TTL_MS */
  readonly sessionTtlMs: number;
  /** PAI_BCRYPT_COST */
  readonly bcryptCost: number;
  /** PAI_MAX_MESSAGE_BYTES */
  readonly maxMessageBytes: number;
  /** PAI_DRAIN_TIMEOUT_MS */
  readonly drainTimeoutMs: number;
  /** PAI_DATABASE_TIMEOUT_MS */
  readonly databaseTimeoutMs: number;
  /** The HTTP side port (health and metrics); absent when PAI_HTTP_PORT is unset. */
  readonly http?: { readonly host: string; readonly port: number };
  readonly log: LogConfig;
  readonly ledger: LedgerConfig;
}

/**
 * Everything the service reads from its environment, parsed and checked once at boot. A field
 * exists only where it applies: the TCP settings under a TCP transport, the Redis URL under a
 * Redis nonce record. Over NATS the nonce record is a shared one: a queue group hands each
 * request to any of its instances, and with a record per process a replay that lands on another
 * instance would be accepted.
 */
export type AppConfig = CommonConfig &
  (
    | {
        readonly transport: TcpTransport;
        readonly nonceRecord: NonceRecordConfig;
      }
    | {
        readonly transport: NatsTransport;
        readonly nonceRecord: SharedNonceRecord;
      }
  );

/** Parses and validates the environment; throws ConfigError naming the first bad variable. */
export function loadConfig(env: Env = process.env): AppConfig {
  const production = isOn(env, 'NODE_ENV');
  const dataDir = parseDataDir(env);
  const database = parseDatabaseConfig(env);
  const transport = parseTransportConfig(env);
  const common = {
    production,
    database,
    dataDir,
    macWindowMs: integer(env, 'PAI_MAC_WINDOW_MS'),
    sessionTtlMs: integer(env, 'PAI_SESSION_TTL_MS'),
    bcryptCost: integer(env, 'PAI_BCRYPT_COST'),
    maxMessageBytes: integer(env, 'PAI_MAX_MESSAGE_BYTES'),
    drainTimeoutMs: integer(env, 'PAI_DRAIN_TIMEOUT_MS'),
    databaseTimeoutMs: integer(env, 'PAI_DATABASE_TIMEOUT_MS'),
    http: readHttp(env, transport),
    log: readLog(env),
    ledger: {
      settleMs: integer(env, 'PAI_LEDGER_SETTLE_MS'),
      sealIntervalMs: integer(env, 'PAI_LEDGER_SEAL_INTERVAL_MS'),
    },
  };
  const deployment =
    transport.kind === 'nats'
      ? { transport, nonceRecord: readNonceRecord(env, database, transport) }
      : { transport, nonceRecord: readNonceRecord(env, database, transport) };
  const secrets = readSecrets(env, {
    production,
    database,
    transport,
    dataDir,
  });
  return { ...common, ...secrets, ...deployment };
}

/** With PAI_NONCE_STORE unset: memory on SQLite over TCP (one instance), the database otherwise. */
export function defaultNonceRecord(
  database: DatabaseConfig,
  transport: NatsTransport,
): SharedNonceRecord;
export function defaultNonceRecord(
  database: DatabaseConfig,
  transport: TransportConfig,
): NonceRecordConfig;
export function defaultNonceRecord(
  database: DatabaseConfig,
  transport: TransportConfig,
): NonceRecordConfig {
  return database.type === 'mysql' || transport.kind === 'nats'
    ? { kind: 'database' }
    : { kind: 'memory' };
}

function readNonceRecord(
  env: Env,
  database: DatabaseConfig,
  transport: NatsTransport,
): SharedNonceRecord;
function readNonceRecord(
  env: Env,
  database: DatabaseConfig,
  transport: TransportConfig,
): NonceRecordConfig;
function readNonceRecord(
  env: Env,
  database: DatabaseConfig,
  transport: TransportConfig,
): NonceRecordConfig {
  const kind = optionalChoice(env, 'PAI_NONCE_STORE');
  if (kind === undefined) return defaultNonceRecord(database, transport);
  if (kind === 'memory' && transport.kind === 'nats') {
    throw new ConfigError(
      'PAI_NONCE_STORE',
      'must be "database" or "redis" with PAI_TRANSPORT=nats: instances in a queue group must share the replay record',
    );
  }
  return kind === 'redis' ? { kind, ...readRedis(env) } : { kind };
}

function readRedis(env: Env): { url: string; prefix: string } {
  const url = envOrFile(env, 'PAI_REDIS_URL');
  const source = sourceOf(env, 'PAI_REDIS_URL');
  if (!url) {
    throw new ConfigError(source, 'is required when PAI_NONCE_STORE=redis');
  }
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    // Not echoed: the URL may carry a password.
    throw new ConfigError(source, 'is not a URL (redis://host:port/db)');
  }
  if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:') {
    throw new ConfigError(source, 'must start with redis:// or rediss://');
  }
  return { url, prefix: text(env, 'PAI_REDIS_PREFIX') };
}

/**
 * Off unless PAI_HTTP_PORT is set: the TCP port answers nothing unsigned, and an unauthenticated
 * port is something an operator opts into (the container image does), on its own address.
 */
function readHttp(env: Env, transport: TransportConfig): CommonConfig['http'] {
  // PAI_HTTP_HOST alone is not an error: the image sets it, and `-e PAI_HTTP_PORT=` alone must
  // be enough to turn the port off there.
  const port = optionalInteger(env, 'PAI_HTTP_PORT');
  if (port === undefined) return undefined;
  if (port !== 0 && transport.kind === 'tcp' && port === transport.port) {
    throw new ConfigError('PAI_HTTP_PORT', `must differ from PAI_PORT`);
  }
  return { host: text(env, 'PAI_HTTP_HOST'), port };
}

function readLog(env: Env): LogConfig {
  const level = choice(env, 'PAI_LOG_LEVEL');
  const format = choice(env, 'PAI_LOG_FORMAT');
  if (format === 'pretty' && !isInstalled('pino-pretty')) {
    throw new ConfigError(
      'PAI_LOG_FORMAT',
      'pretty needs pino-pretty, a development dependency that is not installed here',
    );
  }
  return { level, format };
}

export function isInstalled(module: string): boolean {
  try {
    require.resolve(module);
    return true;
  } catch {
    return false;
  }
}

/**
 * What `pai-server ledger verify` reads, and nothing more: the database and the ledger key (an
 * operator checking the ledger need not hold the MAC keys or the pepper).
 */
export function loadVerifyConfig(env: Env = process.env): {
  database: DatabaseConfig;
  ledgerKey: Buffer;
} {
  return {
    database: parseDatabaseConfig(env),
    ledgerKey: readLedgerKey(env, parseDataDir(env)),
  };
}
