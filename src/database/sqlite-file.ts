import {
  chmodSync,
  closeSync,
  constants,
  fchmodSync,
  mkdirSync,
  openSync,
  statSync,
} from 'node:fs';
import { dirname } from 'node:path';
import { ConfigError } from '@pai/client/config/config.error';

const PRIVATE_FILE = 0o600;
const PRIVATE_DIRECTORY = 0o700;
const OPEN_TO_OTHERS = 0o077;

/** The files SQLite keeps beside the database: they hold its pages too. */
export function sqliteCompanions(file: string): string[] {
  return [`${file}-wal`, `${file}-shm`, `${file}-journal`];
}

/**
 * Makes the embedded database's directory and files private to the service's user before
 * better-sqlite3 opens them: password hashes, sessions and every transaction are in there.
 *
 * The database file is created 0600 here, whatever the umask: SQLite would create it 0644, and a
 * later chmod would come too late for whoever opened it in between (an open descriptor keeps its
 * access). SQLite creates the -wal, -shm and -journal files with the mode of the database file
 * (unix VFS, findCreateFileMode and unixOpenSharedMemory), so they are 0600 too.
 *
 * A file left readable by others (made before these rules, or by hand) is tightened rather than
 * refused: the service is its owner, 0600 is what the operator would set, and refusing would stop
 * every upgraded deployment until someone ran chmod. A directory that already exists is left as
 * it is (it may be a mount point, or shared), with a warning if others can enter it.
 */
export function prepareSqliteFile(
  file: string,
  warn: (message: string) => void,
): void {
  // SQLite's in-memory database, as TypeORM recognises it: no file at all.
  if (file === ':memory:') return;
  const directory = dirname(file);
  const created = mkdirSync(directory, {
    recursive: true,
    mode: PRIVATE_DIRECTORY,
  });
  if (
    created === undefined &&
    (statSync(directory).mode & OPEN_TO_OTHERS) !== 0
  ) {
    warn(
      `${directory} can be entered by other users; the database files in it are private (0600), chmod 700 it to keep their names private too`,
    );
  }
  createPrivately(file);
  for (const path of [file, ...sqliteCompanions(file)]) tighten(path, warn);
}

function createPrivately(file: string): void {
  let descriptor: number;
  try {
    descriptor = openSync(
      file,
      constants.O_CREAT | constants.O_EXCL | constants.O_RDWR,
      PRIVATE_FILE,
    );
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return;
    throw error;
  }
  try {
    // The umask may have taken bits away: the owner must read and write it, nobody else.
    fchmodSync(descriptor, PRIVATE_FILE);
  } finally {
    closeSync(descriptor);
  }
}

function tighten(path: string, warn: (message: string) => void): void {
  let mode: number;
  try {
    mode = statSync(path).mode;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw error;
  }
  if ((mode & OPEN_TO_OTHERS) === 0) return;
  try {
    chmodSync(path, PRIVATE_FILE);
  } catch (error) {
    throw new ConfigError(
      'PAI_DATA_DIR',
      `${path} is readable by other users and cannot be made private (${(error as NodeJS.ErrnoException).code ?? 'error'}); run chmod 600 on it as its owner`,
    );
  }
  warn(`${path} was readable by other users; it is private now (0600)`);
}
