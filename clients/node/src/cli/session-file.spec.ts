import {
  chmodSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { CliError } from './exit-codes';
import {
  deleteSession,
  readSession,
  sessionFilePath,
  writeSession,
  type StoredSession,
} from './session-file';

const SESSION: StoredSession = {
  server: '127.0.0.1:8080',
  username: 'alice',
  userId: '1',
  token: 'q3Xk0bq3Xk0bq3Xk0bq3Xk0bq3Xk0bq3Xk0bq3Xk0bq',
  expiresAt: '2026-11-28T04:40:00.000Z',
};

/** A temporary directory of each test's own, for the session file. */
function useDirectory(): () => string {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'pai-session-'));
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });
  return () => dir;
}

describe(writeSession.name, () => {
  const directory = useDirectory();

  it('should write the session with mode 0600 in a 0700 directory, whatever the umask', () => {
    const file = join(directory(), 'state', 'pai', 'session.json');
    const umask = process.umask(0);
    try {
      writeSession(file, SESSION);
    } finally {
      process.umask(umask);
    }
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(statSync(join(directory(), 'state', 'pai')).mode & 0o777).toBe(
      0o700,
    );
    expect(readSession(file)).toEqual(SESSION);
  });

  it('should replace an existing file whole, by rename, leaving no temporary file', () => {
    const file = join(directory(), 'session.json');
    writeFileSync(file, 'old and readable by all', { mode: 0o644 });
    chmodSync(file, 0o644);
    const before = statSync(file).ino;
    writeSession(file, { ...SESSION, username: 'bob' });
    expect(statSync(file).ino).not.toBe(before);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(readSession(file)?.username).toBe('bob');
    expect(readdirSync(directory())).toEqual(['session.json']);
  });
});

describe(readSession.name, () => {
  const directory = useDirectory();

  it('should read no session when there is no file', () => {
    expect(readSession(join(directory(), 'none.json'))).toBeUndefined();
  });

  it('should refuse a session file other users can read', () => {
    const file = join(directory(), 'session.json');
    writeSession(file, SESSION);
    chmodSync(file, 0o640);
    expect(() => readSession(file)).toThrow(CliError);
    expect(() => readSession(file)).toThrow(/readable by other users/);
  });

  it('should refuse a file that is not a session', () => {
    const file = join(directory(), 'session.json');
    writeFileSync(file, JSON.stringify({ token: 'x' }), { mode: 0o600 });
    expect(() => readSession(file)).toThrow(/not a session file/);
  });
});

describe(deleteSession.name, () => {
  const directory = useDirectory();

  it('should delete the file, and say when there was none', () => {
    const file = join(directory(), 'session.json');
    writeSession(file, SESSION);
    expect(deleteSession(file)).toBe(true);
    expect(readdirSync(directory())).toEqual([]);
    expect(deleteSession(file)).toBe(false);
  });
});

describe(sessionFilePath.name, () => {
  it('should prefer the option, then PAI_SESSION_FILE', () => {
    const env = { PAI_SESSION_FILE: '/env/session.json' };
    expect(sessionFilePath(env, '/opt/s.json')).toBe('/opt/s.json');
    expect(sessionFilePath(env)).toBe('/env/session.json');
  });

  it('should default to XDG_STATE_HOME, else ~/.local/state', () => {
    expect(sessionFilePath({ XDG_STATE_HOME: '/xdg/state' })).toBe(
      '/xdg/state/pai/session.json',
    );
    // The XDG spec says to ignore a relative path.
    expect(sessionFilePath({ XDG_STATE_HOME: 'relative' })).toBe(
      join(homedir(), '.local', 'state', 'pai', 'session.json'),
    );
    expect(sessionFilePath({})).toBe(
      join(homedir(), '.local', 'state', 'pai', 'session.json'),
    );
  });
});
