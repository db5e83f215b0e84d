import { randomBytes } from 'node:crypto';
import {
  existsSync,
  linkSync,
  mkdirSync,
  readFileSync,
  statSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { ConfigError } from './config.error';
import { envOrFile } from './env-file';
import {
  DatabaseConfig,
  parseDatabaseConfig,
  parseDataDir,
} from './database-config';
import { parseTransportConfig, type TransportConfig } from './transport-config';

type Env = Record<string, string | undefined>;

/** Everything the service reads from its environment, parsed and checked once at boot. */
export interface AppConfig {
  readonly production: boolean;
  /**
   * `tcp`: the service listens on host:port (and tls). `nats`: it subscribes on a NATS broker and
   * host, port, tls, frame and idle timeouts and maxConnections do not apply.
   */
  readonly transport: TransportConfig;
  readonly host: string;
  readonly port: number;
  readonly database: DatabaseConfig;
  readonly dataDir: string;
  readonly macKeys: ReadonlyMap<string, Buffer>;
  readonly macWindowMs: number;
  readonly sessionTtlMs: number;
  readonly bcryptCost: number;
  readonly passwordPepper: Buffer;
  readonly maxMessageBytes: number;
  /** A frame must arrive whole within this time of its first byte (slow-loris bound). */
  readonly frameTimeoutMs: number;
  /** A connection with no traffic in either direction for this long is closed. */
  readonly idleTimeoutMs: number;
  /** Connections beyond this many are refused at accept, so a flood cannot starve open ones. */
  readonly maxConnections: number;
  /** Connections one address may hold at once (0: no cap, as behind a balancer that caps). */
  readonly maxConnectionsPerAddress: number;
  /** This many unauthenticated messages in a row (checks 1-3 failed) close their connection. */
  readonly maxUnverifiedInRow: number;
  /** A connection with no authenticated request this long after opening is closed. */
  readonly authTimeoutMs: number;
  /** On SIGTERM, how long in-flight requests get to finish and deliver their replies. */
  readonly drainTimeoutMs: number;
  /** A unit of work that has not finished in this time answers UNAVAILABLE instead of hanging. */
  readonly databaseTimeoutMs: number;
  /**
   * Where accepted (kid, nonce) pairs are kept: in this process's memory (one instance only: the
   * embedded SQLite default) or in the database (shared by every instance: the MySQL default).
   */
  readonly nonceStore: NonceRecordKind;
  /** The Redis behind the `redis` nonce record; present exactly when that record is chosen. */
  readonly redis?: RedisConfig;
  readonly tls?: { readonly cert: Buffer; readonly key: Buffer };
  /** The HTTP side port (health and metrics); absent when PAI_HTTP_PORT is unset. */
  readonly http?: { readonly host: string; readonly port: number };
  readonly log: LogConfig;
}

export const LOG_LEVELS = [
  'fatal',
  'error',
  'warn',
  'info',
  'debug',
  'trace',
  'silent',
] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface LogConfig {
  readonly level: LogLevel;
  /** `auto`: human-readable when stdout is a terminal outside production and pino-pretty is installed. */
  readonly format: 'auto' | 'json' | 'pretty';
}

export const APP_CONFIG = Symbol('APP_CONFIG');

export type NonceRecordKind = 'memory' | 'database' | 'redis';

export interface RedisConfig {
  /** redis:// or rediss:// URL; may hold a password, so it is never logged. */
  readonly url: string;
  /** Prefix of every key PAI writes, so deployments can share one Redis. */
  readonly prefix: string;
}

export const DEV_SECRETS_FILE = 'dev-secrets.json';
const MIN_SECRET_BYTES = 32;
const KID_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;
const BASE64_PATTERN = /^[A-Za-z0-9+/]+={0,2}$/;

function integer(
  env: Env,
  name: string,
  fallback: number,
  min: number,
  max: number,
): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  if (!/^[0-9]+$/.test(raw)) {
    throw new ConfigError(name, `must be a whole number, got "${raw}"`);
  }
  const value = Number(raw);
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new ConfigError(
      name,
      `must be between ${min} and ${max}, got ${raw}`,
    );
  }
  return value;
}

function decodeSecret(name: string, value: string, what: string): Buffer {
  if (!BASE64_PATTERN.test(value) || value.length % 4 !== 0) {
    throw new ConfigError(name, `${what} is not valid base64`);
  }
  const bytes = Buffer.from(value, 'base64');
  if (bytes.length < MIN_SECRET_BYTES) {
    throw new ConfigError(
      name,
      `${what} must decode to at least ${MIN_SECRET_BYTES} bytes, got ${bytes.length}`,
    );
  }
  return bytes;
}

/** `kid:base64secret,kid2:base64secret2` */
export function parseMacKeys(name: string, raw: string): Map<string, Buffer> {
  const keys = new Map<string, Buffer>();
  for (const [index, entry] of raw.split(',').entries()) {
    const item = entry.trim();
    const colon = item.indexOf(':');
    if (colon <= 0) {
      throw new ConfigError(name, 'each entry must be kid:base64secret');
    }
    const kid = item.slice(0, colon);
    if (!KID_PATTERN.test(kid)) {
      throw new ConfigError(
        name,
        // Not echoed: a pair written the wrong way round would put the secret in the log.
        `the key id of entry ${index + 1} must be 1-64 characters of [A-Za-z0-9._-]`,
      );
    }
    if (keys.has(kid)) {
      throw new ConfigError(name, `key id "${kid}" is listed twice`);
    }
    keys.set(
      kid,
      decodeSecret(name, item.slice(colon + 1), `the secret of "${kid}"`),
    );
  }
  return keys;
}

interface DevSecrets {
  PAI_MAC_KEYS: string;
  PAI_PASSWORD_PEPPER: string;
}

/**
 * Written whole to a private temporary file, then linked into place: link() fails if the file
 * exists, so two processes starting at once agree on one set of secrets (the loser reads the
 * winner's), and neither can read a half-written file.
 */
function createDevSecrets(file: string): void {
  const fresh: DevSecrets = {
    PAI_MAC_KEYS: `default:${randomBytes(32).toString('base64')}`,
    PAI_PASSWORD_PEPPER: randomBytes(32).toString('base64'),
  };
  const temporary = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  writeFileSync(temporary, JSON.stringify(fresh, null, 2) + '\n', {
    mode: 0o600,
    flag: 'wx',
  });
  try {
    linkSync(temporary, file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  } finally {
    unlinkSync(temporary);
  }
}

/**
 * With nothing configured, both secrets are generated once into PAI_DATA_DIR so that `npm start`
 * works on a bare machine; the command-line client reads the MAC key from the same file. The
 * values are never printed.
 */
export function loadOrCreateDevSecrets(dataDir: string): DevSecrets {
  const file = join(dataDir, DEV_SECRETS_FILE);
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  if (!existsSync(file)) createDevSecrets(file);
  if ((statSync(file).mode & 0o077) !== 0) {
    throw new ConfigError(
      'PAI_DATA_DIR',
      `${file} is readable by other users; run chmod 600 on it`,
    );
  }
  let parsed: Partial<DevSecrets>;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8')) as Partial<DevSecrets>;
  } catch {
    throw new ConfigError('PAI_DATA_DIR', `${file} is not valid JSON`);
  }
  if (
    typeof parsed.PAI_MAC_KEYS !== 'string' ||
    typeof parsed.PAI_PASSWORD_PEPPER !== 'string'
  ) {
    throw new ConfigError('PAI_DATA_DIR', `${file} is incomplete`);
  }
  return parsed as DevSecrets;
}

/**
 * PAI_MAC_KEYS and PAI_PASSWORD_PEPPER, or the development secrets (generated once into
 * PAI_DATA_DIR/dev-secrets.json) in the zero-configuration case only: outside production, on the
 * embedded SQLite database, over TCP, and with neither secret given. Anywhere else an instance
 * may have siblings (a shared MySQL database, a NATS queue group) or an operator who manages its
 * secrets, and a pepper or key made up on one machine would lock users out of the others, or pair
 * silently with a configured one: a missing secret stops the start, naming the variable and why
 * it is required. One secret given and not the other is half-configured, not zero-configured:
 * the missing one is required too.
 */
function readSecrets(
  env: Env,
  context: {
    production: boolean;
    database: DatabaseConfig;
    transport: TransportConfig;
    dataDir: string;
  },
): Pick<AppConfig, 'macKeys' | 'passwordPepper'> {
  const macKeysRaw = envOrFile(env, 'PAI_MAC_KEYS');
  const pepperRaw = envOrFile(env, 'PAI_PASSWORD_PEPPER');
  if (macKeysRaw && pepperRaw) {
    return {
      macKeys: parseMacKeys(sourceOf(env, 'PAI_MAC_KEYS'), macKeysRaw),
      passwordPepper: decodeSecret(
        sourceOf(env, 'PAI_PASSWORD_PEPPER'),
        pepperRaw,
        'the pepper',
      ),
    };
  }
  const reason = context.production
    ? 'NODE_ENV=production'
    : context.database.type === 'mysql'
      ? `${sourceOf(env, 'DATABASE_URL')} is set`
      : context.transport.kind === 'nats'
        ? 'PAI_TRANSPORT=nats'
        : macKeysRaw
          ? `${sourceOf(env, 'PAI_MAC_KEYS')} is set`
          : pepperRaw
            ? `${sourceOf(env, 'PAI_PASSWORD_PEPPER')} is set`
            : undefined;
  if (reason !== undefined) {
    const missing = macKeysRaw ? 'PAI_PASSWORD_PEPPER' : 'PAI_MAC_KEYS';
    throw new ConfigError(
      missing,
      `is required when ${reason} (or ${missing}_FILE)`,
    );
  }
  const dev = loadOrCreateDevSecrets(context.dataDir);
  return {
    macKeys: parseMacKeys('PAI_DATA_DIR', dev.PAI_MAC_KEYS),
    passwordPepper: decodeSecret(
      'PAI_DATA_DIR',
      dev.PAI_PASSWORD_PEPPER,
      'the generated pepper',
    ),
  };
}

function readTls(env: Env): AppConfig['tls'] {
  const certFile = env.PAI_TLS_CERT_FILE || undefined;
  const keyFile = env.PAI_TLS_KEY_FILE || undefined;
  if (!certFile && !keyFile) return undefined;
  if (!certFile) {
    throw new ConfigError(
      'PAI_TLS_CERT_FILE',
      'must be set when PAI_TLS_KEY_FILE is',
    );
  }
  if (!keyFile) {
    throw new ConfigError(
      'PAI_TLS_KEY_FILE',
      'must be set when PAI_TLS_CERT_FILE is',
    );
  }
  const read = (name: string, file: string) => {
    try {
      return readFileSync(file);
    } catch (error) {
      throw new ConfigError(
        name,
        `cannot read ${file} (${(error as NodeJS.ErrnoException).code ?? 'error'})`,
      );
    }
  };
  return {
    cert: read('PAI_TLS_CERT_FILE', certFile),
    key: read('PAI_TLS_KEY_FILE', keyFile),
  };
}

const HOST_PATTERN = /^[A-Za-z0-9.:_-]{1,253}$/;

function hostOf(env: Env, name: string): string {
  const host = env[name] || '127.0.0.1';
  if (!HOST_PATTERN.test(host)) {
    throw new ConfigError(name, `"${host}" is not a host name or address`);
  }
  return host;
}

/**
 * Off unless PAI_HTTP_PORT is set: the TCP port answers nothing unsigned, and an unauthenticated
 * port is something an operator opts into (the container image does), on its own address.
 */
function readHttp(env: Env, tcpPort: number | undefined): AppConfig['http'] {
  // PAI_HTTP_HOST alone is not an error: the image sets it, and `-e PAI_HTTP_PORT=` alone must
  // be enough to turn the port off there.
  if (env.PAI_HTTP_PORT === undefined || env.PAI_HTTP_PORT === '') {
    return undefined;
  }
  const port = integer(env, 'PAI_HTTP_PORT', 0, 0, 65535);
  if (port !== 0 && tcpPort !== undefined && port === tcpPort) {
    throw new ConfigError('PAI_HTTP_PORT', `must differ from PAI_PORT`);
  }
  return { host: hostOf(env, 'PAI_HTTP_HOST'), port };
}

function readLog(env: Env): LogConfig {
  const level = env.PAI_LOG_LEVEL || 'info';
  if (!(LOG_LEVELS as readonly string[]).includes(level)) {
    throw new ConfigError(
      'PAI_LOG_LEVEL',
      `must be one of ${LOG_LEVELS.join(', ')}, got "${level}"`,
    );
  }
  const format = env.PAI_LOG_FORMAT || 'auto';
  if (format !== 'auto' && format !== 'json' && format !== 'pretty') {
    throw new ConfigError(
      'PAI_LOG_FORMAT',
      `must be auto, json or pretty, got "${format}"`,
    );
  }
  if (format === 'pretty' && !isInstalled('pino-pretty')) {
    throw new ConfigError(
      'PAI_LOG_FORMAT',
      'pretty needs pino-pretty, a development dependency that is not installed here',
    );
  }
  return { level: level as LogLevel, format };
}

export function isInstalled(module: string): boolean {
  try {
    require.resolve(module);
    return true;
  } catch {
    return false;
  }
}

/** Which variable a file-capable secret came from, for error messages. */
function sourceOf(env: Env, name: string): string {
  return env[`${name}_FILE`] ? `${name}_FILE` : name;
}

/** Parses and validates the environment; throws ConfigError naming the first bad variable. */
export function loadConfig(env: Env = process.env): AppConfig {
  const production = env.NODE_ENV === 'production';
  const dataDir = parseDataDir(env);
  const database = parseDatabaseConfig(env);

  const host = hostOf(env, 'PAI_HOST');
  // 0 asks the OS for a free port (tests use it); the bound port is logged.
  const port = integer(env, 'PAI_PORT', 8080, 0, 65535);
  const macWindowMs = integer(
    env,
    'PAI_MAC_WINDOW_MS',
    300_000,
    1_000,
    86_400_000,
  );
  const sessionTtlMs = integer(
    env,
    'PAI_SESSION_TTL_MS',
    3_600_000,
    1_000,
    2_592_000_000,
  );
  const bcryptCost = integer(env, 'PAI_BCRYPT_COST', 12, 10, 20);
  const maxMessageBytes = integer(
    env,
    'PAI_MAX_MESSAGE_BYTES',
    65_536,
    1_024,
    16_777_216,
  );
  const frameTimeoutMs = integer(
    env,
    'PAI_FRAME_TIMEOUT_MS',
    5_000,
    100,
    600_000,
  );
  const idleTimeoutMs = integer(
    env,
    'PAI_IDLE_TIMEOUT_MS',
    300_000,
    1_000,
    86_400_000,
  );
  const maxConnections = integer(
    env,
    'PAI_MAX_CONNECTIONS',
    1_000,
    1,
    1_000_000,
  );
  const maxConnectionsPerAddress = integer(
    env,
    'PAI_MAX_CONNECTIONS_PER_ADDRESS',
    100,
    0,
    1_000_000,
  );
  const maxUnverifiedInRow = integer(
    env,
    'PAI_MAX_UNVERIFIED_IN_ROW',
    3,
    1,
    1_000,
  );
  const authTimeoutMs = integer(
    env,
    'PAI_AUTH_TIMEOUT_MS',
    5_000,
    100,
    600_000,
  );
  const drainTimeoutMs = integer(
    env,
    'PAI_DRAIN_TIMEOUT_MS',
    10_000,
    0,
    300_000,
  );
  const databaseTimeoutMs = integer(
    env,
    'PAI_DATABASE_TIMEOUT_MS',
    5_000,
    100,
    120_000,
  );
  const transport = parseTransportConfig(env);
  const tls = readTls(env);
  if (tls && transport.kind === 'nats') {
    throw new ConfigError(
      env.PAI_TLS_CERT_FILE ? 'PAI_TLS_CERT_FILE' : 'PAI_TLS_KEY_FILE',
      'applies to PAI_TRANSPORT=tcp only; with NATS, use tls:// URLs in PAI_NATS_SERVERS',
    );
  }
  const http = readHttp(env, transport.kind === 'tcp' ? port : undefined);
  const log = readLog(env);
  const nonceStore = parseNonceStore(env, database, transport);
  const redis = nonceStore === 'redis' ? readRedis(env) : undefined;

  const { macKeys, passwordPepper } = readSecrets(env, {
    production,
    database,
    transport,
    dataDir,
  });

  return {
    production,
    transport,
    host,
    port,
    database,
    dataDir,
    macKeys,
    macWindowMs,
    sessionTtlMs,
    bcryptCost,
    passwordPepper,
    maxMessageBytes,
    frameTimeoutMs,
    idleTimeoutMs,
    maxConnections,
    maxConnectionsPerAddress,
    maxUnverifiedInRow,
    authTimeoutMs,
    drainTimeoutMs,
    databaseTimeoutMs,
    nonceStore,
    redis,
    tls,
    http,
    log,
  };
}

function parseNonceStore(
  env: Env,
  database: DatabaseConfig,
  transport: TransportConfig,
): NonceRecordKind {
  const raw = env.PAI_NONCE_STORE || undefined;
  if (raw === undefined) {
    return database.type === 'mysql' || transport.kind === 'nats'
      ? 'database'
      : 'memory';
  }
  if (raw !== 'memory' && raw !== 'database' && raw !== 'redis') {
    throw new ConfigError(
      'PAI_NONCE_STORE',
      `must be "memory", "database" or "redis", got "${raw}"`,
    );
  }
  if (raw === 'memory' && transport.kind === 'nats') {
    // A queue group hands each request to any of its instances: with a record per process, a
    // replay that lands on another instance would be accepted.
    throw new ConfigError(
      'PAI_NONCE_STORE',
      'must be "database" or "redis" with PAI_TRANSPORT=nats: instances in a queue group must share the replay record',
    );
  }
  return raw;
}

const REDIS_PREFIX_PATTERN = /^[A-Za-z0-9._:{}-]{0,64}$/;

function readRedis(env: Env): RedisConfig {
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
  const prefix = env.PAI_REDIS_PREFIX ?? 'pai:';
  if (!REDIS_PREFIX_PATTERN.test(prefix)) {
    throw new ConfigError(
      'PAI_REDIS_PREFIX',
      'must be at most 64 characters of [A-Za-z0-9._:{}-]',
    );
  }
  return { url, prefix };
}
