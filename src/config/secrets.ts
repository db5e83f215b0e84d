import { randomBytes } from 'node:crypto';
import {
  existsSync,
  linkSync,
  mkdirSync,
  readFileSync,
  renameSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { ConfigError } from '@pai/client/config/config.error';
import type { DatabaseConfig } from './database-config';
import { envOrFile, sourceOf } from './environment';
import {
  DEV_SECRETS_FILE,
  decodeSecret,
  parseDevSecrets,
  parseMacKeys,
  type DevSecretsFile as ClientDevSecretsFile,
  type Secrets as ClientSecrets,
} from '@pai/client/config/mac-keys';
import type { Env } from './variables';

/** The client's secrets (MAC keys, pepper) and the one only the service holds. */
export interface Secrets extends ClientSecrets {
  /** Seals the ledger's blocks (docs/ledger.md). */
  readonly ledgerKey: Buffer;
}

interface DevSecretsFile extends ClientDevSecretsFile {
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

/** The development secrets file, the ledger key included (the client's parser reads the rest). */
function parseServerDevSecrets(file: string): Secrets {
  const secrets = parseDevSecrets(file);
  const parsed = JSON.parse(
    readFileSync(file, 'utf8'),
  ) as Partial<DevSecretsFile>;
  if (typeof parsed.PAI_LEDGER_KEY !== 'string') {
    throw new ConfigError('PAI_DATA_DIR', `${file} is incomplete`);
  }
  return {
    ...secrets,
    ledgerKey: decodeSecret(
      'PAI_DATA_DIR',
      parsed.PAI_LEDGER_KEY,
      'the generated ledger key',
    ),
  };
}

/**
 * PAI_MAC_KEYS, PAI_PASSWORD_PEPPER and PAI_LEDGER_KEY, or the development secrets (generated
 * once into PAI_DATA_DIR/dev-secrets.json, so that `npm start` works on a bare machine) in the
 * zero-configuration case only: outside production, on the embedded SQLite database, over TCP,
 * and with no secret given. Anywhere else an instance may have siblings (a shared MySQL database,
 * a NATS queue group) or an operator who manages its secrets, and a pepper or key made up on one
 * machine would lock users out of the others, or pair silently with a configured one: a missing
 * secret stops the start, naming the variable and why it is required. Some secrets given and not
 * the others is half-configured, not zero-configured: the missing ones are required too.
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
  return parseServerDevSecrets(file);
}

/**
 * The ledger key alone, for `pai-server ledger verify`, which needs nothing else of the service's
 * secrets: PAI_LEDGER_KEY (or its _FILE), else the development secrets the service generated.
 */
export function readLedgerKey(env: Env, dataDir: string): Buffer {
  const raw = envOrFile(env, 'PAI_LEDGER_KEY');
  if (raw)
    return decodeSecret(sourceOf(env, 'PAI_LEDGER_KEY'), raw, 'the ledger key');
  const file = join(dataDir, DEV_SECRETS_FILE);
  if (!existsSync(file)) {
    throw new ConfigError(
      'PAI_LEDGER_KEY',
      'is required (or PAI_LEDGER_KEY_FILE): the key the service seals its blocks with',
    );
  }
  return parseServerDevSecrets(file).ledgerKey;
}
