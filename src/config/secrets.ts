import { randomBytes } from 'node:crypto';
import {
  existsSync,
  linkSync,
  mkdirSync,
  readFileSync,
  renameSync,
  statSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { ConfigError } from './config.error';
import type { DatabaseConfig } from './database-config';
import { envOrFile, sourceOf } from './environment';
import type { Env } from './variables';

/** What a key id may be: on the wire (the envelope's `kid`) and in PAI_MAC_KEYS alike. */
export const KID_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;
const BASE64_PATTERN = /^[A-Za-z0-9+/]+={0,2}$/;
const MIN_SECRET_BYTES = 32;

export const DEV_SECRETS_FILE = 'dev-secrets.json';

export interface Secrets {
  readonly macKeys: ReadonlyMap<string, Buffer>;
  readonly passwordPepper: Buffer;
  /** Seals the ledger's blocks (docs/ledger.md). */
  readonly ledgerKey: Buffer;
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

/** PAI_MAC_KEYS, or the file PAI_MAC_KEYS_FILE names, parsed; undefined when neither is set. */
export function readMacKeys(env: Env): Map<string, Buffer> | undefined {
  const raw = envOrFile(env, 'PAI_MAC_KEYS');
  return raw === undefined
    ? undefined
    : parseMacKeys(sourceOf(env, 'PAI_MAC_KEYS'), raw);
}

interface DevSecretsFile {
  PAI_MAC_KEYS: string;
  PAI_PASSWORD_PEPPER: string;
  PAI_LEDGER_KEY: string;
}

/**
 * Written whole to a private temporary file, then linked into place: link() fails if the file
 * exists, so two processes starting at once agree on one set of secrets (the loser reads the
 * winner's), and neither can read a half-written file.
 */
function createDevSecrets(file: string): void {
  const fresh: DevSecretsFile = {
    PAI_MAC_KEYS: `default:${randomBytes(32).toString('base64')}`,
    PAI_PASSWORD_PEPPER: randomBytes(32).toString('base64'),
    PAI_LEDGER_KEY: randomBytes(32).toString('base64'),
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
 * A development secrets file written before the ledger existed gets a ledger key of its own,
 * added in place (a private temporary file renamed over it): the other secrets stay as they were.
 */
function addDevLedgerKey(file: string): void {
  let parsed: Partial<DevSecretsFile>;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8')) as Partial<DevSecretsFile>;
  } catch {
    return; // parseDevSecrets names the problem
  }
  if (parsed.PAI_LEDGER_KEY !== undefined) return;
  const temporary = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  writeFileSync(
    temporary,
    JSON.stringify(
      { ...parsed, PAI_LEDGER_KEY: randomBytes(32).toString('base64') },
      null,
      2,
    ) + '\n',
    { mode: 0o600, flag: 'wx' },
  );
  renameSync(temporary, file);
}

/**
 * The development secrets the service generated into `dataDir`, read and never created (the
 * command-line client reads its MAC key here too: a key it made up would be unknown to the
 * service); undefined when the file does not exist. The values are never printed.
 */
export function readDevSecrets(dataDir: string): Secrets | undefined {
  const file = join(dataDir, DEV_SECRETS_FILE);
  return existsSync(file) ? parseDevSecrets(file) : undefined;
}

function parseDevSecrets(file: string): Secrets {
  if ((statSync(file).mode & 0o077) !== 0) {
    throw new ConfigError(
      'PAI_DATA_DIR',
      `${file} is readable by other users; run chmod 600 on it`,
    );
  }
  let parsed: Partial<DevSecretsFile>;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8')) as Partial<DevSecretsFile>;
  } catch {
    throw new ConfigError('PAI_DATA_DIR', `${file} is not valid JSON`);
  }
  if (
    typeof parsed.PAI_MAC_KEYS !== 'string' ||
    typeof parsed.PAI_PASSWORD_PEPPER !== 'string' ||
    typeof parsed.PAI_LEDGER_KEY !== 'string'
  ) {
    throw new ConfigError('PAI_DATA_DIR', `${file} is incomplete`);
  }
  return {
    macKeys: parseMacKeys('PAI_DATA_DIR', parsed.PAI_MAC_KEYS),
    passwordPepper: decodeSecret(
      'PAI_DATA_DIR',
      parsed.PAI_PASSWORD_PEPPER,
      'the generated pepper',
    ),
    ledgerKey: decodeSecret(
      'PAI_DATA_DIR',
      parsed.PAI_LEDGER_KEY,
      'the generated ledger key',
    ),
  };
}

/**
 * PAI_MAC_KEYS, PAI_PASSWORD_PEPPER and PAI_LEDGER_KEY, or the development secrets (generated once into
 * PAI_DATA_DIR/dev-secrets.json, so that `npm start` works on a bare machine) in the
 * zero-configuration case only: outside production, on the embedded SQLite database, over TCP,
 * and with neither secret given. Anywhere else an instance may have siblings (a shared MySQL
 * database, a NATS queue group) or an operator who manages its secrets, and a pepper or key made
 * up on one machine would lock users out of the others, or pair silently with a configured one:
 * a missing secret stops the start, naming the variable and why it is required. Some secrets given
 * and not the others is half-configured, not zero-configured: the missing ones are required too.
 */
export function readSecrets(
  env: Env,
  context: {
    production: boolean;
    database: DatabaseConfig;
    transport: { kind: 'tcp' | 'nats' };
    dataDir: string;
  },
): Secrets {
  const given = {
    PAI_MAC_KEYS: envOrFile(env, 'PAI_MAC_KEYS'),
    PAI_PASSWORD_PEPPER: envOrFile(env, 'PAI_PASSWORD_PEPPER'),
    PAI_LEDGER_KEY: envOrFile(env, 'PAI_LEDGER_KEY'),
  };
  if (given.PAI_MAC_KEYS && given.PAI_PASSWORD_PEPPER && given.PAI_LEDGER_KEY) {
    return {
      macKeys: parseMacKeys(sourceOf(env, 'PAI_MAC_KEYS'), given.PAI_MAC_KEYS),
      passwordPepper: decodeSecret(
        sourceOf(env, 'PAI_PASSWORD_PEPPER'),
        given.PAI_PASSWORD_PEPPER,
        'the pepper',
      ),
      ledgerKey: decodeSecret(
        sourceOf(env, 'PAI_LEDGER_KEY'),
        given.PAI_LEDGER_KEY,
        'the ledger key',
      ),
    };
  }
  const names = Object.keys(given) as (keyof typeof given)[];
  const set = names.find((name) => given[name]);
  const reason = context.production
    ? 'NODE_ENV=production'
    : context.database.type === 'mysql'
      ? `${sourceOf(env, 'DATABASE_URL')} is set`
      : context.transport.kind === 'nats'
        ? 'PAI_TRANSPORT=nats'
        : set
          ? `${sourceOf(env, set)} is set`
          : undefined;
  if (reason !== undefined) {
    const missing = names.find((name) => !given[name])!;
    throw new ConfigError(
      missing,
      `is required when ${reason} (or ${missing}_FILE)`,
    );
  }
  mkdirSync(context.dataDir, { recursive: true, mode: 0o700 });
  const file = join(context.dataDir, DEV_SECRETS_FILE);
  if (!existsSync(file)) createDevSecrets(file);
  else addDevLedgerKey(file);
  return parseDevSecrets(file);
}

/**
 * The ledger key alone, for `pai-server ledger verify`, which needs nothing else of the service's
 * secrets: PAI_LEDGER_KEY (or its _FILE), else the development secrets the service generated.
 */
export function readLedgerKey(env: Env, dataDir: string): Buffer {
  const raw = envOrFile(env, 'PAI_LEDGER_KEY');
  if (raw)
    return decodeSecret(sourceOf(env, 'PAI_LEDGER_KEY'), raw, 'the ledger key');
  const dev = readDevSecrets(dataDir);
  if (!dev) {
    throw new ConfigError(
      'PAI_LEDGER_KEY',
      'is required (or PAI_LEDGER_KEY_FILE): the key the service seals its blocks with',
    );
  }
  return dev.ledgerKey;
}
