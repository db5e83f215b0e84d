import { randomBytes } from 'node:crypto';
import {
  existsSync,
  linkSync,
  mkdirSync,
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
  type DevSecretsFile,
  type Secrets,
} from '@pai/client/config/mac-keys';
import type { Env } from './variables';

/**
 * Written whole to a private temporary file, then linked into place: link() fails if the file
 * exists, so two processes starting at once agree on one set of secrets (the loser reads the
 * winner's), and neither can read a half-written file.
 */
function createDevSecrets(file: string): void {
  const fresh: DevSecretsFile = {
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
 * PAI_MAC_KEYS and PAI_PASSWORD_PEPPER, or the development secrets (generated once into
 * PAI_DATA_DIR/dev-secrets.json, so that `npm start` works on a bare machine) in the
 * zero-configuration case only: outside production, on the embedded SQLite database, over TCP,
 * and with neither secret given. Anywhere else an instance may have siblings (a shared MySQL
 * database, a NATS queue group) or an operator who manages its secrets, and a pepper or key made
 * up on one machine would lock users out of the others, or pair silently with a configured one:
 * a missing secret stops the start, naming the variable and why it is required. One secret given
 * and not the other is half-configured, not zero-configured: the missing one is required too.
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
  mkdirSync(context.dataDir, { recursive: true, mode: 0o700 });
  const file = join(context.dataDir, DEV_SECRETS_FILE);
  if (!existsSync(file)) createDevSecrets(file);
  return parseDevSecrets(file);
}
