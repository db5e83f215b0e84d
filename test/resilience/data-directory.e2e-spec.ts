import { spawn } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { DEV_SECRETS_FILE } from '@pai/client/config/mac-keys';
import { SQLITE_FILE_NAME } from '../../src/config/database-config';
import { runPai } from '../support/cli-runner';
import {
  FROM_SOURCES,
  killServiceProcess,
  startServiceProcess,
  type ServiceProcess,
} from '../support/service-process';

// Each test starts the service as a process, compiling its TypeScript: seconds on a busy machine.
jest.setTimeout(120_000);

const ROOT = join(__dirname, '..', '..');

function modeOf(path: string): string {
  return (statSync(path).mode & 0o777).toString(8);
}

/**
 * The zero-configuration case: nothing but where to listen and the data directory; not even the
 * suite's DATABASE_URL, whatever database the other suites run on.
 */
function bareEnv(dataDir: string, extra: NodeJS.ProcessEnv = {}) {
  return {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    NODE_ENV: 'test',
    PAI_HOST: '127.0.0.1',
    PAI_PORT: '0',
    PAI_DATA_DIR: dataDir,
    PAI_BCRYPT_COST: '10',
    TS_NODE_TRANSPILE_ONLY: '1',
    ...extra,
  };
}

/** Runs the service expecting it not to start: its exit status and what it wrote. */
function startExpectingFailure(
  env: NodeJS.ProcessEnv,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((done, fail) => {
    const child = spawn(
      process.execPath,
      [...FROM_SOURCES, join(ROOT, 'src', 'main.ts')],
      { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (text: string) => {
      stdout += text;
    });
    child.stderr.setEncoding('utf8').on('data', (text: string) => {
      stderr += text;
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('error', fail);
    child.on('close', (code) => {
      clearTimeout(timer);
      done({ code, stdout, stderr });
    });
  });
}

describe('the data directory of a service started with nothing configured (sqlite, tcp)', () => {
  let root: string;
  let service: ServiceProcess | undefined;

  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'pai-data-dir-'));
  });

  afterEach(async () => {
    await killServiceProcess(service);
    service = undefined;
    rmSync(root, { recursive: true, force: true });
  });

  it('should keep its directory and files private under umask 000, and the CLI should find its key', async () => {
    const dataDir = join(root, 'state', 'pai');

    service = await startServiceProcess(bareEnv(dataDir), { umask: 0o000 });

    const database = join(dataDir, SQLITE_FILE_NAME);
    expect({
      parent: modeOf(join(root, 'state')),
      dataDir: modeOf(dataDir),
      database: modeOf(database),
      wal: modeOf(`${database}-wal`),
      shm: modeOf(`${database}-shm`),
      secrets: modeOf(join(dataDir, DEV_SECRETS_FILE)),
    }).toEqual({
      parent: '700',
      dataDir: '700',
      database: '600',
      wal: '600',
      shm: '600',
      secrets: '600',
    });
    // The command-line client signs with the key the service generated, and verifies its reply.
    const ping = await runPai(['ping'], {
      PATH: process.env.PATH,
      HOME: root,
      PAI_HOST: '127.0.0.1',
      PAI_PORT: String(service.port),
      PAI_DATA_DIR: dataDir,
      PAI_SESSION_FILE: join(root, 'session.json'),
    });
    expect(ping).toMatchObject({ code: 0, stderr: '' });
  });

  it('should create the database directory 0700 itself when the secrets are given', async () => {
    // With the secrets given, no development secrets file creates the directory first.
    const dataDir = join(root, 'state', 'pai');
    const secrets = {
      PAI_MAC_KEYS: `default:${randomBytes(32).toString('base64')}`,
      PAI_PASSWORD_PEPPER: randomBytes(32).toString('base64'),
      PAI_LEDGER_KEY: randomBytes(32).toString('base64'),
    };

    service = await startServiceProcess(bareEnv(dataDir, secrets), {
      umask: 0o000,
    });

    const database = join(dataDir, SQLITE_FILE_NAME);
    expect({
      parent: modeOf(join(root, 'state')),
      dataDir: modeOf(dataDir),
      database: modeOf(database),
      wal: modeOf(`${database}-wal`),
      shm: modeOf(`${database}-shm`),
      secretsFile: existsSync(join(dataDir, DEV_SECRETS_FILE)),
    }).toEqual({
      parent: '700',
      dataDir: '700',
      database: '600',
      wal: '600',
      shm: '600',
      secretsFile: false,
    });
  });

  it('should make a database file left readable by others private, and say so', async () => {
    const dataDir = join(root, 'data');
    mkdirSync(dataDir, { mode: 0o700 });
    const database = join(dataDir, SQLITE_FILE_NAME);
    // An empty file is an empty SQLite database.
    writeFileSync(database, '', { mode: 0o644 });
    expect(modeOf(database)).toBe('644');

    service = await startServiceProcess(bareEnv(dataDir), { umask: 0o022 });

    expect(modeOf(database)).toBe('600');
    expect(modeOf(`${database}-wal`)).toBe('600');
    expect(service.output()).toContain(
      `${database} was readable by other users; it is private now (0600)`,
    );
  });

  it.each([
    [
      'DATABASE_URL',
      {
        DATABASE_URL: 'mysql://pai:pw@127.0.0.1:1/pai',
        PAI_MAC_KEYS: `default:${randomBytes(32).toString('base64')}`,
      },
      'PAI_PASSWORD_PEPPER: is required when DATABASE_URL is set (or PAI_PASSWORD_PEPPER_FILE)',
    ],
    [
      'PAI_TRANSPORT=nats',
      { PAI_TRANSPORT: 'nats' },
      'PAI_MAC_KEYS: is required when PAI_TRANSPORT=nats (or PAI_MAC_KEYS_FILE)',
    ],
  ])(
    'should refuse to start with %s and a secret missing, in one line naming it, generating nothing',
    async (_case, extra, message) => {
      const dataDir = join(root, 'data');

      const run = await startExpectingFailure(bareEnv(dataDir, extra));

      expect(run).toEqual({
        code: 1,
        stdout: '',
        stderr: `PAI cannot start: ${message}\n`,
      });
      expect(existsSync(dataDir)).toBe(false);
    },
  );
});
