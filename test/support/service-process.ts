import {
  spawn,
  type ChildProcess,
  type ChildProcessByStdio,
} from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { TEST_KEYS, TEST_LEDGER_KEY, TEST_PEPPER } from './test-keys';
import type { TestDatabase } from './test-database';

const ROOT = join(__dirname, '..', '..');

/**
 * Node's arguments that run the service from its TypeScript sources: ts-node, and the client
 * package's `pai-source` export condition, so that `@pai/client/…` is its sources too, never a
 * stale build of them.
 */
export const FROM_SOURCES: readonly string[] = [
  '--conditions=pai-source',
  '-r',
  'ts-node/register',
];

/** The service as `npm run build` leaves it: what production runs (`script` below). */
export const BUILT_SERVICE = join(ROOT, 'dist', 'src', 'main.js');

export interface ServiceProcess {
  readonly child: ChildProcess;
  readonly port: number;
  /** Everything the process wrote to stdout and stderr so far. */
  output(): string;
  /** Resolves with the exit status once the process has ended. */
  readonly exited: Promise<{ code: number | null; signal: string | null }>;
}

/** The environment a real service process gets in the tests: the suite's keys and database. */
export function serviceEnv(
  database: TestDatabase,
  extra: Record<string, string> = {},
): NodeJS.ProcessEnv {
  return {
    ...process.env,
    NODE_ENV: 'test',
    PAI_HOST: '127.0.0.1',
    PAI_PORT: '0',
    PAI_DATA_DIR: database.dataDir,
    PAI_MAC_KEYS: Object.entries(TEST_KEYS)
      .map(([kid, key]) => `${kid}:${key.toString('base64')}`)
      .join(','),
    PAI_PASSWORD_PEPPER: TEST_PEPPER.toString('base64'),
    PAI_LEDGER_KEY: TEST_LEDGER_KEY.toString('base64'),
    PAI_LEDGER_SETTLE_MS: '200',
    PAI_LEDGER_SEAL_INTERVAL_MS: '50',
    PAI_BCRYPT_COST: '10',
    DATABASE_URL: database.config.type === 'mysql' ? database.config.url : '',
    // Transpile only: the suites type-check elsewhere (lint, build), and a spawn stays ~1 s.
    TS_NODE_TRANSPILE_ONLY: '1',
    ...extra,
  };
}

/**
 * The service as its own OS process, for what only a real process shows: signals, exit codes,
 * kill -9, a database that is down at start. From the TypeScript sources (no build needed), or
 * the build `script` names. Resolves once it logs the port it listens on.
 */
export async function startServiceProcess(
  env: NodeJS.ProcessEnv,
  {
    readyTimeoutMs = 60_000,
    onOutput,
    umask,
    script,
    nodeArgs = [],
    ipc = false,
    keepOutput = true,
  }: {
    readyTimeoutMs?: number;
    onOutput?: (text: string) => void;
    /** The file mode creation mask the process starts with (through sh's `umask`). */
    umask?: number;
    /**
     * A JavaScript file for node to run instead of the sources (BUILT_SERVICE, or another
     * server that logs `listening on host:port` the same way).
     */
    script?: string;
    /** Node's own options, before the script (e.g. `--cpu-prof`, `--import`). */
    nodeArgs?: string[];
    /** An IPC channel to the process (`child.send`, its `message` events). */
    ipc?: boolean;
    /**
     * false: output() and onOutput stop at the port line, and what follows is drained unread
     * unless the caller listens on child.stdout or child.stderr itself: for a process that logs
     * every request for minutes, which no string could hold.
     */
    keepOutput?: boolean;
  } = {},
): Promise<ServiceProcess> {
  const command = [
    process.execPath,
    ...nodeArgs,
    ...(script === undefined
      ? [...FROM_SOURCES, join(ROOT, 'src', 'main.ts')]
      : [script]),
  ];
  const [file, ...args] =
    umask === undefined
      ? command
      : [
          '/bin/sh',
          '-c',
          `umask ${umask.toString(8).padStart(3, '0')} && exec "$@"`,
          'sh',
          ...command,
        ];
  // Typed by hand: spawn's overloads see output pipes only in a three-element stdio.
  const child = spawn(file, args, {
    cwd: ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe', ...(ipc ? (['ipc'] as const) : [])],
  }) as ChildProcessByStdio<null, Readable, Readable>;
  let text = '';
  const exited = new Promise<{ code: number | null; signal: string | null }>(
    (resolve) =>
      child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  let listening = false;
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`service did not start:\n${text}`));
    }, readyTimeoutMs);
    const onData = (chunk: Buffer) => {
      text += chunk.toString();
      onOutput?.(text);
      if (listening) return;
      const match = /listening on [^\s:]+:(\d+)/.exec(text);
      if (match) {
        listening = true;
        clearTimeout(timer);
        resolve(Number(match[1]));
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    void exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(
        new Error(
          `service exited (${code ?? signal}) before listening:\n${text}`,
        ),
      );
    });
  });
  if (!keepOutput) {
    for (const stream of [child.stdout, child.stderr]) {
      stream.removeAllListeners('data');
      stream.resume();
    }
  }
  return { child, port, output: () => text, exited };
}

/** Ends the process for good (SIGKILL) if it is still running; for afterEach. */
export async function killServiceProcess(
  service: ServiceProcess | undefined,
): Promise<void> {
  if (!service || service.child.exitCode !== null || service.child.signalCode)
    return;
  service.child.kill('SIGKILL');
  await once(service.child, 'exit').catch(() => undefined);
}
