// What a flood of unauthenticated probes on the HTTP side port costs signed traffic: the p50 of
// users.me, one request at a time, while the side port is idle and while two HTTP clients (a
// worker thread, so they do not share the measuring client's event loop) request /health/ready and
// /metrics back to back. Phases alternate quiet, flood, quiet, flood; each is bounded in time.
//
//   npm run build && node bench/probe-flood.mts [--root=DIR] [--seconds=4] [--rate=N]
//     [--paths=/health/ready,/metrics]
//   DATABASE_URL=mysql://root@127.0.0.1:3306/ node bench/probe-flood.mts   (a fresh database)
//
// --root names another build's directory (its dist/ and node_modules/), to compare two builds;
// --paths=/health/live gives the floor: what any flood of HTTP requests costs on 2 cores.
// Node runs this file as it is (type stripping): it loads the build, not the sources.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { get } from 'node:http';
import { createRequire } from 'node:module';
import { createServer, type AddressInfo } from 'node:net';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type * as MysqlPromise from 'mysql2/promise';
import type * as Pai from '@pai/client';

const here = dirname(fileURLToPath(import.meta.url));
const option = (name: string, fallback: string) => {
  const found = process.argv.find((arg) => arg.startsWith(`--${name}=`));
  return found ? found.slice(name.length + 3) : fallback;
};
const root = resolve(option('root', join(here, '..')));
const seconds = Number(option('seconds', '4'));
const paths = option('paths', '/health/ready,/metrics').split(',');
const rate = Number(option('rate', '0'));
const require = createRequire(join(root, 'package.json'));
const { createPaiClient } = require('@pai/client') as typeof Pai;

const KEY = randomBytes(32);

function freePort(): Promise<number> {
  return new Promise((done, fail) => {
    const server = createServer();
    server.once('error', fail);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => done(port));
    });
  });
}

async function mysqlDatabase() {
  const url = process.env.DATABASE_URL;
  if (!url) return undefined;
  const mysql = require('mysql2/promise') as typeof MysqlPromise;
  const parsed = new URL(url);
  const name = `pai_probe_${randomBytes(4).toString('hex')}`;
  const admin = await mysql.createConnection({
    host: parsed.hostname,
    port: Number(parsed.port || 3306),
    user: decodeURIComponent(parsed.username),
    password: decodeURIComponent(parsed.password),
  });
  await admin.query(`CREATE DATABASE ${name}`);
  parsed.pathname = `/${name}`;
  return {
    url: parsed.toString(),
    async drop() {
      await admin.query(`DROP DATABASE ${name}`);
      await admin.end();
    },
  };
}

/** Resolves true on a 2xx answer, false on any other answer or a refused connection. */
function answersOk(url: string): Promise<boolean> {
  return new Promise((done) => {
    get(url, (response) => {
      response.resume();
      const status = response.statusCode ?? 0;
      done(status >= 200 && status < 300);
    }).on('error', () => done(false));
  });
}

async function startService(
  env: Record<string, string>,
  healthUrl: string,
): Promise<ChildProcess> {
  const child = spawn(process.execPath, [join(root, 'dist/src/main.js')], {
    cwd: root,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | null>((done) => child.once('exit', done));
  // Ready when the side port says so (at PAI_LOG_LEVEL=warn there is no "listening" line).
  for (let attempt = 0; ; attempt += 1) {
    const outcome = await Promise.race([
      exited.then((code) => ({ code })),
      answersOk(healthUrl).then((ok) => ({ ok })),
    ]);
    if ('code' in outcome)
      throw new Error(`service exited (${outcome.code}):\n${output}`);
    if (outcome.ok) break;
    if (attempt > 300)
      throw new Error(`service not ready after 60 s:\n${output}`);
    await new Promise((done) => setTimeout(done, 200));
  }
  return child;
}

// Two HTTP clients, each requesting the paths in turn until told to stop or until its deadline:
// back to back, or with --rate=N at N requests a second in all (open loop: the flood does not
// slow down when the service does, and does not speed up when it answers sooner).
const FLOOD = `
const { parentPort, workerData } = require('node:worker_threads');
let stop = false;
parentPort.on('message', () => (stop = true));
const deadline = Date.now() + workerData.maxMs;
const interval = workerData.rate > 0 ? 2_000 / workerData.rate : 0;
let probes = 0;
async function client() {
  const start = performance.now();
  for (let sent = 0; !stop && Date.now() < deadline; ) {
    for (const path of workerData.paths) {
      const due = start + sent * interval - performance.now();
      if (due > 0) await new Promise((done) => setTimeout(done, due));
      const response = await fetch(workerData.base + path);
      await response.arrayBuffer();
      probes += 1;
      sent += 1;
    }
  }
}
Promise.all([client(), client()]).then(() => parentPort.postMessage(probes));
`;

function startFlood(base: string): () => Promise<number> {
  const worker = new Worker(FLOOD, {
    eval: true,
    workerData: { base, paths, rate, maxMs: (seconds + 10) * 1_000 },
  });
  const started = performance.now();
  const done = new Promise<number>((ok) => worker.once('message', ok));
  return async () => {
    worker.postMessage('stop');
    const probes = await done;
    await worker.terminate();
    return probes / ((performance.now() - started) / 1_000);
  };
}

/** The service's CPU time so far, in ms (user + system, from /proc; Linux only). */
function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8')
    .split(') ')[1]
    .split(' ');
  // utime and stime, fields 14 and 15 of the line, in clock ticks (100 a second on Linux).
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
}

async function measure(client: Pai.PaiClient, token: string) {
  const latencies: number[] = [];
  const end = performance.now() + seconds * 1_000;
  while (performance.now() < end) {
    const start = performance.now();
    await client.send('users.me', { token });
    latencies.push(performance.now() - start);
  }
  latencies.sort((a, b) => a - b);
  return {
    n: latencies.length,
    p50: percentile(latencies, 0.5),
    p90: percentile(latencies, 0.9),
  };
}

const database = await mysqlDatabase();
const dataDir = mkdtempSync(join(os.tmpdir(), 'pai-probe-'));
const [port, httpPort] = [await freePort(), await freePort()];
const service = await startService(
  {
    NODE_ENV: 'production',
    PAI_HOST: '127.0.0.1',
    PAI_PORT: String(port),
    PAI_HTTP_PORT: String(httpPort),
    PAI_HTTP_HOST: '127.0.0.1',
    PAI_MAC_KEYS: `default:${KEY.toString('base64')}`,
    PAI_PASSWORD_PEPPER: randomBytes(32).toString('base64'),
    PAI_LEDGER_KEY: randomBytes(32).toString('base64'),
    PAI_BCRYPT_COST: '10',
    PAI_DATA_DIR: dataDir,
    DATABASE_URL: database?.url ?? '',
    // One line per request would measure the logger; rejections and failures still log.
    PAI_LOG_LEVEL: 'warn',
  },
  `http://127.0.0.1:${httpPort}/health/ready`,
);
const client = createPaiClient({
  host: '127.0.0.1',
  port,
  kid: 'default',
  secret: KEY,
  timeoutMs: 15_000,
});
try {
  const username = `probe-${randomBytes(4).toString('hex')}`;
  const password = 'probe-flood-password-1';
  await client.send('auth.register', { username, password });
  const { token } = await client.send('auth.login', { username, password });
  for (let i = 0; i < 300; i += 1) await client.send('users.me', { token });

  const rows = [];
  for (const phase of ['quiet', 'flood', 'quiet', 'flood']) {
    const stopFlood =
      phase === 'flood'
        ? startFlood(`http://127.0.0.1:${httpPort}`)
        : undefined;
    const cpuBefore = cpuMs(service.pid!);
    const result = await measure(client, token);
    const cpu = (cpuMs(service.pid!) - cpuBefore) / (seconds * 1_000);
    const probesPerSecond = stopFlood ? await stopFlood() : 0;
    rows.push({ phase, ...result, cpu, probesPerSecond });
  }
  const fmt = (ms: number) => ms.toFixed(2);
  console.log(
    `root ${root}, ${database ? 'MariaDB/MySQL' : 'SQLite'}, ${seconds} s per phase, flood of ` +
      `${paths.join(' ')} ${rate > 0 ? `at ${rate}/s` : 'back to back'}`,
  );
  for (const row of rows) {
    console.log(
      `${row.phase.padEnd(6)} users.me n=${row.n} p50=${fmt(row.p50)} ms p90=${fmt(row.p90)} ms` +
        `  service CPU ${Math.round(row.cpu * 100)}%` +
        (row.probesPerSecond
          ? `  probes/s=${Math.round(row.probesPerSecond)}`
          : ''),
    );
  }
} finally {
  await client.close();
  service.kill('SIGTERM');
  await new Promise((done) => service.once('exit', done));
  await database?.drop();
  rmSync(dataDir, { recursive: true, force: true });
}
