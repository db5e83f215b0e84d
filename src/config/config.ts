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
import {
  DatabaseConfig,
  parseDatabaseConfig,
  parseDataDir,
} from './database-config';

type Env = Record<string, string | undefined>;

/** Everything the service reads from its environment, parsed and checked once at boot. */
export interface AppConfig {
  readonly production: boolean;
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
  /**
   * Where accepted (kid, nonce) pairs are kept: in this process's memory (one instance only: the
   * embedded SQLite default) or in the database (shared by every instance: the MySQL default).
   */
  readonly nonceStore: NonceStoreKind;
  readonly tls?: { readonly cert: Buffer; readonly key: Buffer };
}

export const APP_CONFIG = Symbol('APP_CONFIG');

export type NonceStoreKind = 'memory' | 'database';

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
 * Outside production a missing secret is generated once into PAI_DATA_DIR so that
 * `npm start` works on a bare machine; the command-line client reads the MAC key from the same
 * file. The values are never printed.
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

/** Parses and validates the environment; throws ConfigError naming the first bad variable. */
export function loadConfig(env: Env = process.env): AppConfig {
  const production = env.NODE_ENV === 'production';
  const dataDir = parseDataDir(env);
  const database = parseDatabaseConfig(env);

  const host = env.PAI_HOST || '127.0.0.1';
  if (!/^[A-Za-z0-9.:_-]{1,253}$/.test(host)) {
    throw new ConfigError(
      'PAI_HOST',
      `"${host}" is not a host name or address`,
    );
  }
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
  const tls = readTls(env);
  const nonceStore = parseNonceStore(env, database);

  const macKeysRaw = env.PAI_MAC_KEYS || undefined;
  const pepperRaw = env.PAI_PASSWORD_PEPPER || undefined;
  if (production && !macKeysRaw) {
    throw new ConfigError(
      'PAI_MAC_KEYS',
      'is required when NODE_ENV=production',
    );
  }
  if (production && !pepperRaw) {
    throw new ConfigError(
      'PAI_PASSWORD_PEPPER',
      'is required when NODE_ENV=production',
    );
  }
  const dev =
    !macKeysRaw || !pepperRaw ? loadOrCreateDevSecrets(dataDir) : undefined;
  const macKeys = macKeysRaw
    ? parseMacKeys('PAI_MAC_KEYS', macKeysRaw)
    : parseMacKeys('PAI_DATA_DIR', dev!.PAI_MAC_KEYS);
  const passwordPepper = pepperRaw
    ? decodeSecret('PAI_PASSWORD_PEPPER', pepperRaw, 'the pepper')
    : decodeSecret(
        'PAI_DATA_DIR',
        dev!.PAI_PASSWORD_PEPPER,
        'the generated pepper',
      );

  return {
    production,
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
    nonceStore,
    tls,
  };
}

function parseNonceStore(env: Env, database: DatabaseConfig): NonceStoreKind {
  const raw = env.PAI_NONCE_STORE || undefined;
  if (raw === undefined) {
    return database.type === 'mysql' ? 'database' : 'memory';
  }
  if (raw !== 'memory' && raw !== 'database') {
    throw new ConfigError(
      'PAI_NONCE_STORE',
      `must be "memory" or "database", got "${raw}"`,
    );
  }
  return raw;
}
