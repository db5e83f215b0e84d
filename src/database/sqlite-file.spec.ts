import * as fs from 'node:fs';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataSource } from 'typeorm';
import { ConfigError } from '@pai/client/config/config.error';
import { prepareSqliteFile } from './sqlite-file';

jest.mock('node:fs', () => {
  const actual = jest.requireActual<typeof fs>('node:fs');
  return { ...actual, chmodSync: jest.fn(actual.chmodSync) };
});
const chmod = jest.mocked(fs.chmodSync);

function modeOf(path: string): number {
  return statSync(path).mode & 0o777;
}

/** Runs `work` with the most permissive umask, as a careless shell or service manager may set. */
async function underUmask<T>(work: () => T | Promise<T>): Promise<T> {
  const previous = process.umask(0o000);
  try {
    return await work();
  } finally {
    process.umask(previous);
  }
}

describe(prepareSqliteFile.name, () => {
  let root: string;
  let warnings: string[];
  const warn = (message: string) => warnings.push(message);

  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'pai-sqlite-file-'));
    warnings = [];
  });

  afterEach(() => {
    chmod.mockClear();
    rmSync(root, { recursive: true, force: true });
  });

  it('should create the directories 0700 and the database file 0600, whatever the umask', async () => {
    const file = join(root, 'a', 'b', 'pai.sqlite');

    await underUmask(() => prepareSqliteFile(file, warn));

    expect(modeOf(join(root, 'a'))).toBe(0o700);
    expect(modeOf(join(root, 'a', 'b'))).toBe(0o700);
    expect(modeOf(file)).toBe(0o600);
    expect(warnings).toEqual([]);
  });

  it('should leave the -wal and -shm files SQLite creates as private as the database file', async () => {
    const file = join(root, 'pai.sqlite');

    const modes = await underUmask(async () => {
      prepareSqliteFile(file, warn);
      const dataSource = new DataSource({
        type: 'better-sqlite3',
        database: file,
        enableWAL: true,
      });
      await dataSource.initialize();
      try {
        await dataSource.query('CREATE TABLE t (x INTEGER)');
        await dataSource.query('INSERT INTO t VALUES (1)');
        return [file, `${file}-wal`, `${file}-shm`].map(modeOf);
      } finally {
        await dataSource.destroy();
      }
    });

    expect(modes).toEqual([0o600, 0o600, 0o600]);
  });

  it('should make an existing database file and its companions private, saying so', () => {
    const file = join(root, 'pai.sqlite');
    writeFileSync(file, '', { mode: 0o644 });
    writeFileSync(`${file}-wal`, 'pages', { mode: 0o666 });
    fs.chmodSync(file, 0o644);
    fs.chmodSync(`${file}-wal`, 0o666);

    prepareSqliteFile(file, warn);

    expect(modeOf(file)).toBe(0o600);
    expect(modeOf(`${file}-wal`)).toBe(0o600);
    expect(warnings).toEqual([
      `${file} was readable by other users; it is private now (0600)`,
      `${file}-wal was readable by other users; it is private now (0600)`,
    ]);
  });

  it('should leave a private database file untouched and say nothing', () => {
    const file = join(root, 'pai.sqlite');
    prepareSqliteFile(file, warn);
    chmod.mockClear();

    prepareSqliteFile(file, warn);

    expect(chmod).not.toHaveBeenCalled();
    expect(warnings).toEqual([]);
  });

  it('should stop the start, naming PAI_DATA_DIR, when a readable file cannot be made private', () => {
    const file = join(root, 'pai.sqlite');
    writeFileSync(file, '');
    fs.chmodSync(file, 0o644);
    chmod.mockImplementationOnce(() => {
      throw Object.assign(new Error('not the owner'), { code: 'EPERM' });
    });

    let error: unknown;
    try {
      prepareSqliteFile(file, warn);
    } catch (caught) {
      error = caught;
    }

    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).variable).toBe('PAI_DATA_DIR');
    expect((error as ConfigError).message).toContain('EPERM');
  });

  it('should leave an existing directory open to others as it is, with a warning', () => {
    const directory = join(root, 'shared');
    fs.mkdirSync(directory);
    fs.chmodSync(directory, 0o755);

    prepareSqliteFile(join(directory, 'pai.sqlite'), warn);

    expect(modeOf(directory)).toBe(0o755);
    expect(modeOf(join(directory, 'pai.sqlite'))).toBe(0o600);
    expect(warnings).toEqual([
      expect.stringContaining(`${directory} can be entered by other users`),
    ]);
  });

  it('should create no file for an in-memory database', () => {
    const cwd = process.cwd();
    process.chdir(root);
    try {
      prepareSqliteFile(':memory:', warn);
    } finally {
      process.chdir(cwd);
    }

    expect(fs.readdirSync(root)).toEqual([]);
  });
});
