import { isAbsolute, resolve } from 'node:path';
import { ConfigError } from './config.error';

/*
 * The defaults the service and its clients share: the service's variables table
 * (src/config/variables.ts) takes them from here, so a client finds a local service as it is.
 */

/** PAI_HOST's default. */
export const DEFAULT_HOST = '127.0.0.1';
/** PAI_PORT's default. */
export const DEFAULT_PORT = 8080;
/** PAI_DATA_DIR's default, relative to the working directory. */
export const DEFAULT_DATA_DIR = 'data';
/** PAI_NATS_INBOX_PREFIX's default: nats.js's own inbox root (`_INBOX.<unique id>`), dot-terminated. */
export const DEFAULT_NATS_INBOX_PREFIX = '_INBOX.';

// Tokens of letters, digits, `_` and `-`, each followed by a dot: no NATS wildcard (`*`, `>`) and
// no empty token, so `<prefix>>` is a valid subscription that matches only PAI's subjects.
export const SUBJECT_PREFIX_PATTERN = /^(?:[A-Za-z0-9_-]+\.){1,16}$/;
export const SUBJECT_PREFIX_RULE = 'dot-terminated tokens of [A-Za-z0-9_-]';

type Env = Record<string, string | undefined>;

/** PAI_DATA_DIR as an absolute path. */
export function parseDataDir(env: Env): string {
  const raw = env.PAI_DATA_DIR ?? DEFAULT_DATA_DIR;
  if (raw.trim() === '' || raw.includes('\0')) {
    throw new ConfigError('PAI_DATA_DIR', 'must be a directory path');
  }
  return isAbsolute(raw) ? raw : resolve(raw);
}
