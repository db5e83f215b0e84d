import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError } from './config.error';

type Env = Record<string, string | undefined>;

/** What a key id may be: on the wire (the envelope's `kid`) and in PAI_MAC_KEYS alike. */
export const KID_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;
const BASE64_PATTERN = /^[A-Za-z0-9+/]+={0,2}$/;
export const MIN_SECRET_BYTES = 32;

export const DEV_SECRETS_FILE = 'dev-secrets.json';

export interface Secrets {
  readonly macKeys: ReadonlyMap<string, Buffer>;
  readonly passwordPepper: Buffer;
}

/** The bytes of a base64 secret of at least MIN_SECRET_BYTES; the value is never echoed. */
export function decodeSecret(
  name: string,
  value: string,
  what: string,
): Buffer {
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

/**
 * The value of `name`, or the contents of the file named by `name_FILE` (one trailing line break
 * and surrounding blanks removed). Setting both is refused rather than resolved by a rule the
 * operator would have to remember. File contents are never echoed: they are secrets.
 */
export function envOrFile(env: Env, name: string): string | undefined {
  const direct = env[name] || undefined;
  const fileVariable = `${name}_FILE`;
  const file = env[fileVariable] || undefined;
  if (!file) return direct;
  if (direct) {
    throw new ConfigError(
      fileVariable,
      `set either ${name} or ${fileVariable}, not both`,
    );
  }
  let contents: string;
  try {
    contents = readFileSync(file, 'utf8');
  } catch (error) {
    throw new ConfigError(
      fileVariable,
      `cannot read ${file} (${(error as NodeJS.ErrnoException).code ?? 'error'})`,
    );
  }
  const value = contents.trim();
  if (value === '') throw new ConfigError(fileVariable, `${file} is empty`);
  return value;
}

/** Which variable a value read by envOrFile came from, for error messages. */
export function sourceOf(env: Env, name: string): string {
  return env[`${name}_FILE`] ? `${name}_FILE` : name;
}

/** PAI_MAC_KEYS, or the file PAI_MAC_KEYS_FILE names, parsed; undefined when neither is set. */
export function readMacKeys(env: Env): Map<string, Buffer> | undefined {
  const raw = envOrFile(env, 'PAI_MAC_KEYS');
  return raw === undefined
    ? undefined
    : parseMacKeys(sourceOf(env, 'PAI_MAC_KEYS'), raw);
}

export interface DevSecretsFile {
  PAI_MAC_KEYS: string;
  PAI_PASSWORD_PEPPER: string;
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

export function parseDevSecrets(file: string): Secrets {
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
    typeof parsed.PAI_PASSWORD_PEPPER !== 'string'
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
  };
}
