import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError } from '../config/config.error';
import { DEV_SECRETS_FILE, parseMacKeys } from '../config/config';
import { parseDataDir } from '../config/database-config';
import { envOrFile } from '../config/env-file';
import { CliError, CliErrorCode } from './exit-codes';

type Env = Record<string, string | undefined>;

export interface MacKey {
  kid: string;
  secret: Buffer;
}

function configError(error: unknown): never {
  if (error instanceof ConfigError) {
    throw new CliError(CliErrorCode.CONFIG, error.message);
  }
  throw error;
}

function firstKey(variable: string, raw: string): MacKey {
  try {
    const [kid, secret] = [...parseMacKeys(variable, raw)][0];
    return { kid, secret };
  } catch (error) {
    configError(error);
  }
}

/**
 * The first key of PAI_MAC_KEYS, or of the file PAI_MAC_KEYS_FILE names (the service's format and
 * variables); when neither is set, the development key the service generated into PAI_DATA_DIR.
 * That file is only read: a key made up here would be one the service does not know.
 */
export function resolveMacKey(env: Env): MacKey {
  let file: string;
  try {
    const keys = envOrFile(env, 'PAI_MAC_KEYS');
    if (keys !== undefined) {
      return firstKey(
        env.PAI_MAC_KEYS_FILE ? 'PAI_MAC_KEYS_FILE' : 'PAI_MAC_KEYS',
        keys,
      );
    }
    file = join(parseDataDir(env), DEV_SECRETS_FILE);
  } catch (error) {
    configError(error);
  }
  let mode: number;
  try {
    mode = statSync(file).mode;
  } catch {
    throw new CliError(
      CliErrorCode.CONFIG,
      `no MAC key: PAI_MAC_KEYS is unset and ${file} does not exist; start the service once (npm start) in this directory, set PAI_DATA_DIR to its data directory, or set PAI_MAC_KEYS`,
    );
  }
  if ((mode & 0o077) !== 0) {
    throw new CliError(
      CliErrorCode.CONFIG,
      `${file} is readable by other users; run chmod 600 on it`,
    );
  }
  let keys: unknown;
  try {
    keys = (JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>)
      .PAI_MAC_KEYS;
  } catch {
    keys = undefined;
  }
  if (typeof keys !== 'string') {
    throw new CliError(
      CliErrorCode.CONFIG,
      `${file} holds no PAI_MAC_KEYS entry`,
    );
  }
  return firstKey('PAI_DATA_DIR', keys);
}
