import { randomBytes } from 'node:crypto';
import {
  closeSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  statSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { CliError, CliErrorCode } from './exit-codes';

type Env = Record<string, string | undefined>;

/** What `pai login` keeps between commands. The token is a bearer credential. */
export interface StoredSession {
  /** `host:port` that issued the token: it is never sent anywhere else. */
  server: string;
  username: string;
  userId: string;
  token: string;
  expiresAt: string;
}

/**
 * `--session`, else PAI_SESSION_FILE, else `$XDG_STATE_HOME/pai/session.json`
 * (`~/.local/state/pai/session.json`): a session belongs to the person at the keyboard, not
 * to a service's data directory or to the directory the command happens to run in, and state,
 * unlike ~/.config, is not what people copy into dotfile repositories.
 */
export function sessionFilePath(env: Env, option?: string): string {
  const chosen = option ?? (env.PAI_SESSION_FILE || undefined);
  if (chosen !== undefined) return resolve(chosen);
  const state = env.XDG_STATE_HOME;
  const base =
    state && isAbsolute(state) ? state : join(homedir(), '.local', 'state');
  return join(base, 'pai', 'session.json');
}

/**
 * Written whole to a temporary file created 0600 next to the target, flushed, then renamed over
 * it: a reader sees the old session or the new one, never half of one, and the token is never
 * in a file others can read, whatever the umask or the old file's mode was.
 */
export function writeSession(file: string, session: StoredSession): void {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  const temporary = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  const fd = openSync(temporary, 'wx', 0o600);
  try {
    try {
      writeSync(fd, JSON.stringify(session, null, 2) + '\n');
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(temporary, file);
  } catch (error) {
    unlinkSync(temporary);
    throw error;
  }
}

function isSession(value: unknown): value is StoredSession {
  if (typeof value !== 'object' || value === null) return false;
  const record = value as Record<string, unknown>;
  return ['server', 'username', 'userId', 'token', 'expiresAt'].every(
    (key) => typeof record[key] === 'string',
  );
}

/** The saved session, or undefined when there is none. */
export function readSession(file: string): StoredSession | undefined {
  let mode: number;
  try {
    mode = statSync(file).mode;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  if ((mode & 0o077) !== 0) {
    // Same rule as the service's dev-secrets.json: refuse rather than use a leaked secret.
    throw new CliError(
      CliErrorCode.CONFIG,
      `${file} is readable by other users; delete it (the token in it may have leaked: log in again) or run chmod 600 on it`,
    );
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'));
  } catch {
    parsed = undefined;
  }
  if (!isSession(parsed)) {
    throw new CliError(
      CliErrorCode.CONFIG,
      `${file} is not a session file written by pai; delete it and log in again`,
    );
  }
  return parsed;
}

/** Deletes the saved session; false when there was none. */
export function deleteSession(file: string): boolean {
  try {
    unlinkSync(file);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw error;
  }
}
