import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { ConfigError } from '../config/config.error';
import { parseDataDir } from '../config/defaults';
import {
  DEV_SECRETS_FILE,
  readDevSecrets,
  readMacKeys,
} from '../config/mac-keys';
import { CliError, CliErrorCode } from './exit-codes';

type Env = Record<string, string | undefined>;

export interface MacKey {
  kid: string;
  secret: Buffer;
}

/**
 * The first key of PAI_MAC_KEYS, or of the file PAI_MAC_KEYS_FILE names (the service's format and
 * variables); when neither is set, the development key the service generated into PAI_DATA_DIR.
 * That file is only read: a key made up here would be one the service does not know.
 */
export function resolveMacKey(env: Env): MacKey {
  let keys: ReadonlyMap<string, Buffer> | undefined;
  let dataDir: string;
  try {
    keys = readMacKeys(env);
    if (keys !== undefined) return firstOf(keys);
    dataDir = env.PAI_DATA_DIR ? parseDataDir(env) : findDataDir(process.cwd());
    keys = readDevSecrets(dataDir)?.macKeys;
  } catch (error) {
    if (error instanceof ConfigError) {
      throw new CliError(CliErrorCode.CONFIG, error.message);
    }
    throw error;
  }
  if (keys === undefined) {
    throw new CliError(
      CliErrorCode.CONFIG,
      `no MAC key: PAI_MAC_KEYS is unset and ${join(dataDir, DEV_SECRETS_FILE)} does not exist; start the service once (npm start) in this directory, set PAI_DATA_DIR to its data directory, or set PAI_MAC_KEYS`,
    );
  }
  return firstOf(keys);
}

/**
 * Without PAI_DATA_DIR: the nearest `data` folder holding the development secrets in `start` or a
 * folder above it (the service started by `npm start` at the project's root, the CLI run from
 * a subfolder), else `./data`. The Python CLI looks the same way.
 */
export function findDataDir(start: string): string {
  for (let here = resolve(start); ; here = dirname(here)) {
    if (existsSync(join(here, 'data', DEV_SECRETS_FILE)))
      return join(here, 'data');
    if (dirname(here) === here) return resolve(start, 'data');
  }
}

function firstOf(keys: ReadonlyMap<string, Buffer>): MacKey {
  const [[kid, secret]] = keys;
  return { kid, secret };
}
