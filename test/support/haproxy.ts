import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './ports';

const ROOT = join(__dirname, '..', '..');

/** The shipped configuration: the tests run this very file, with addresses from the environment. */
export const HAPROXY_CONFIG = join(ROOT, 'deploy', 'haproxy.cfg');

/** Debian's package puts it here; HAPROXY_BIN names another. */
export const HAPROXY_BIN = process.env.HAPROXY_BIN ?? '/usr/sbin/haproxy';

export const haproxyInstalled = existsSync(HAPROXY_BIN);

export interface Backend {
  /** host:port of the instance's protocol port. */
  addr: string;
  /** Its HTTP side port, where HAProxy checks /health/ready. */
  checkPort: number;
}

/** One row of `show stat` for a server: its state as HAProxy sees it. */
export interface ServerStat {
  name: string;
  /** UP, DOWN, MAINT, or a transition such as "UP 1/6" / "DOWN 1/2". */
  status: string;
  /** Last health check result, e.g. L7OK, L4CON (refused), L7STS (503). */
  checkStatus: string;
  /** Connections open to it now. */
  current: number;
  /** Connections it was given since start. */
  total: number;
}

export interface Haproxy {
  readonly port: number;
  readonly child: ChildProcess;
  output(): string;
  /** The backend's servers, pai_1 … pai_n in order. */
  servers(): Promise<ServerStat[]>;
  /** Resolves once `predicate` holds for the servers; rejects after `timeoutMs`. */
  waitFor(
    predicate: (servers: ServerStat[]) => boolean,
    what: string,
    timeoutMs?: number,
  ): Promise<ServerStat[]>;
  stop(): Promise<void>;
}

/**
 * Runs HAProxy in the foreground (`-db`) on deploy/haproxy.cfg, in front of `backends`, on a free
 * loopback port, and resolves once every backend has passed its health check (`L7OK`): from then
 * on a connection to `port` reaches a live instance. `env` adds or overrides variables the
 * configuration reads (e.g. PAI_HAPROXY_MAX_CONN_PER_SOURCE).
 */
export async function startHaproxy(
  backends: Backend[],
  env: Record<string, string> = {},
  readyTimeoutMs = 30_000,
): Promise<Haproxy> {
  if (backends.length < 2 || backends.length > 4) {
    throw new Error('deploy/haproxy.cfg names 2 to 4 servers');
  }
  const dir = mkdtempSync(join(tmpdir(), 'pai-haproxy-'));
  const socket = join(dir, 'admin.sock');
  // HAProxy must be told its port: it cannot report one it picked from port 0.
  const port = await freePort();
  const serverEnv: Record<string, string> = {};
  backends.forEach((backend, index) => {
    serverEnv[`PAI_${index + 1}_ADDR`] = backend.addr;
    serverEnv[`PAI_${index + 1}_CHECK_PORT`] = String(backend.checkPort);
  });
  const child = spawn(HAPROXY_BIN, ['-db', '-f', HAPROXY_CONFIG], {
    env: {
      PATH: process.env.PATH,
      PAI_LISTEN_ADDR: `127.0.0.1:${port}`,
      PAI_HAPROXY_STATS_SOCKET: socket,
      ...serverEnv,
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let text = '';
  child.stdout.on('data', (chunk: Buffer) => (text += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (text += chunk.toString()));
  const exited = once(child, 'exit');

  const servers = async (): Promise<ServerStat[]> => {
    const csv = await statsCommand(socket, 'show stat');
    const [header, ...rows] = csv.trim().split('\n');
    const columns = header.replace(/^# /, '').split(',');
    const at = (row: string[], name: string) => row[columns.indexOf(name)];
    return rows
      .map((line) => line.split(','))
      .filter((row) => at(row, 'pxname') === 'pai' && /^pai_/.test(row[1]))
      .map((row) => ({
        name: at(row, 'svname'),
        status: at(row, 'status'),
        checkStatus: at(row, 'check_status'),
        current: Number(at(row, 'scur')),
        total: Number(at(row, 'stot')),
      }));
  };

  const waitFor = async (
    predicate: (servers: ServerStat[]) => boolean,
    what: string,
    timeoutMs = 30_000,
  ): Promise<ServerStat[]> => {
    const deadline = Date.now() + timeoutMs;
    let last: ServerStat[] | string;
    for (;;) {
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new Error(`haproxy exited:\n${text}`);
      }
      try {
        last = await servers();
        if (predicate(last)) return last;
      } catch (error) {
        last = String(error);
      }
      if (Date.now() > deadline) {
        throw new Error(
          `haproxy: not ${what} within ${timeoutMs} ms: ${JSON.stringify(last)}\n${text}`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  };

  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM'); // HAProxy's hard stop: it closes every connection at once.
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  };

  try {
    await waitFor(
      (list) =>
        list.length === backends.length &&
        list.every((server) => server.checkStatus === 'L7OK'),
      'checked every backend',
      readyTimeoutMs,
    );
  } catch (error) {
    await stop();
    throw error;
  }
  return { port, child, output: () => text, servers, waitFor, stop };
}

/** One command on HAProxy's runtime API (a UNIX socket), and its whole answer. */
function statsCommand(path: string, command: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let answer = '';
    const socket = createConnection(path, () => socket.end(`${command}\n`));
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (answer += chunk));
    // HAProxy may reset rather than close once it has answered: the answer is whole by then only
    // if it ends with the blank line every `show` answer ends with.
    socket.on('error', (error) =>
      answer.endsWith('\n\n') ? resolve(answer) : reject(error),
    );
    socket.on('close', () => resolve(answer));
  });
}
