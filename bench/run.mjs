// `npm run bench`: the service against baselines measured in the same run.
//
// Every scenario runs a subject (A) and its baseline (B) in alternation, several rounds, with the
// same load client; it reports medians with their spread (min–max over the rounds) and the ratio of
// each round, and writes bench/results.json. The service and the echo baseline run in child
// processes (node dist/src/main.js, bench/echo-server.mjs), never in the load client's process.
//
//   npm run bench                  full run (5 rounds of 3 s per measurement)
//   npm run bench -- --quick       2 rounds of 1 s, for development
//   npm run bench -- --only=ping,tx,shared,login,nonce,trips   (probe: sequential latencies on MySQL)
//   npm run bench -- --only=scale,noncecost   1 vs 2 instances behind HAProxy; the shared nonce
//                                  records (database, Redis) against the in-memory one
//   npm run bench -- --profile     the service runs with --cpu-prof (bench/profiles/)
//   npm run bench -- --threads=2   another UV_THREADPOOL_SIZE (default: cores - 1)
//   npm run bench -- --only=ping --shape=8x16   one connection shape only (tx: --shape=c32)
//
// DATABASE_URL names the MySQL/MariaDB server to use (a bench database is created on it and dropped);
// without it the machine's MariaDB at root@127.0.0.1:3306 is used if it answers.
import { spawn } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { connect, createServer } from 'node:net';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import process from 'node:process';
import { clearTimeout, setImmediate, setTimeout } from 'node:timers';
import { URL, fileURLToPath, pathToFileURL } from 'node:url';

const require = createRequire(import.meta.url);
const canonicalize = require('canonicalize').default;
const mysql = require('mysql2/promise');
const bcrypt = require('bcrypt');
const SqliteDatabase = require('better-sqlite3');

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..');
const args = new Set(process.argv.slice(2));
const quick = args.has('--quick');
const profile = args.has('--profile');
const onlyArg = process.argv.find((arg) => arg.startsWith('--only='));
const only = onlyArg ? new Set(onlyArg.slice(7).split(',')) : null;
const wants = (name) => !only || only.has(name);
const shapeArg = process.argv.find((arg) => arg.startsWith('--shape='));

const ROUNDS = quick ? 2 : 5;
const DURATION_MS = quick ? 1_000 : 3_000;
const WARMUP_MS = quick ? 300 : 700;
const REQUEST_TIMEOUT_MS = 15_000;
const BCRYPT_COST = 10;
// The libuv pool runs bcrypt. One core is left to the event loop, so the pool never starves the
// loop that answers everything else; both processes get the same value.
const CORES = os.availableParallelism();
const threadsArg = process.argv.find((arg) => arg.startsWith('--threads='));
const THREADPOOL = threadsArg ? Number(threadsArg.slice(10)) : Math.max(1, CORES - 1);

const MYSQL_CONNECTIONS = 32;
const KID = 'bench';
const KEY = randomBytes(32);
const PEPPER = randomBytes(32);

// ---------------------------------------------------------------- signing (PROTOCOL.md 2)

const noncePrefix = randomBytes(12).toString('base64url');
let nonceCounter = 0;
const nextNonce = () => `${noncePrefix}${(nonceCounter++).toString(36)}`;

function sign(pattern, payload) {
  const ts = Date.now();
  const nonce = nextNonce();
  const text = `PAI-MAC-V2\n${pattern}\n${KID}\n${ts}\n${nonce}\n${canonicalize(payload)}`;
  const mac = createHmac('sha256', KEY).update(text, 'utf8').digest('hex');
  return { v: 2, kid: KID, ts, nonce, payload, mac };
}

// ---------------------------------------------------------------- TCP client (Nest framing)

class Connection {
  static open(port) {
    return new Promise((resolve, reject) => {
      const socket = connect(port, '127.0.0.1');
      socket.once('connect', () => resolve(new Connection(socket)));
      socket.once('error', reject);
    });
  }

  constructor(socket) {
    this.socket = socket;
    this.buffer = '';
    this.pending = new Map();
    this.sequence = 0;
    socket.setNoDelay(true);
    socket.setEncoding('utf8');
    socket.on('data', (chunk) => this.onData(chunk));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      for (const entry of this.pending.values()) entry.reject(new Error('connection closed'));
      this.pending.clear();
    });
  }

  request(pattern, data) {
    const id = String(++this.sequence);
    const json = JSON.stringify({ pattern, data, id });
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, packet: null });
      this.socket.write(`${json.length}#${json}`);
    });
  }

  onData(chunk) {
    this.buffer = this.buffer.length === 0 ? chunk : this.buffer + chunk;
    let position = 0;
    for (;;) {
      const hash = this.buffer.indexOf('#', position);
      if (hash < 0) break;
      const length = Number(this.buffer.slice(position, hash));
      if (this.buffer.length < hash + 1 + length) break;
      const packet = JSON.parse(this.buffer.slice(hash + 1, hash + 1 + length));
      position = hash + 1 + length;
      const entry = this.pending.get(packet.id);
      if (!entry) continue;
      entry.packet = entry.packet ? Object.assign(entry.packet, packet) : packet;
      if (packet.isDisposed || 'response' in packet || 'err' in packet) {
        if (packet.isDisposed === false) continue;
        this.pending.delete(packet.id);
        entry.resolve(entry.packet.err ?? entry.packet.response);
      }
    }
    this.buffer = position === 0 ? this.buffer : this.buffer.slice(position);
  }

  close() {
    this.socket.destroy();
  }
}

// ---------------------------------------------------------------- load generator

/**
 * Keeps `workers` operations in flight (each worker starts its next one as soon as the last one
 * answered) for WARMUP_MS + DURATION_MS, and measures the last DURATION_MS.
 */
async function load({ workers, op, durationMs = DURATION_MS }) {
  const latencies = [];
  let measuring = false;
  let stopped = false;
  let errors = 0;
  let firstError = null;
  let startedAt = 0;
  let endedAt = 0;
  const warm = setTimeout(() => {
    measuring = true;
    startedAt = performance.now();
  }, WARMUP_MS);
  const stop = setTimeout(() => {
    stopped = true;
    endedAt = performance.now();
  }, WARMUP_MS + durationMs);
  const loop = async (worker) => {
    while (!stopped) {
      const began = performance.now();
      let failure;
      try {
        failure = await op(worker);
      } catch (error) {
        failure = error instanceof Error ? error.message : String(error);
      }
      if (failure) {
        errors += 1;
        firstError ??= failure;
      } else if (measuring && !stopped) {
        latencies.push(performance.now() - began);
      }
    }
  };
  let watchdog;
  const finished = Promise.all(Array.from({ length: workers }, (_, index) => loop(index)));
  const timedOut = new Promise((resolve) => {
    watchdog = setTimeout(() => resolve('timeout'), WARMUP_MS + durationMs + REQUEST_TIMEOUT_MS);
  });
  if ((await Promise.race([finished, timedOut])) === 'timeout') {
    errors += 1;
    firstError ??= `requests still pending ${REQUEST_TIMEOUT_MS} ms after the end`;
  }
  clearTimeout(watchdog);
  clearTimeout(warm);
  clearTimeout(stop);
  latencies.sort((a, b) => a - b);
  const at = (q) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? NaN;
  const seconds = (endedAt - startedAt) / 1000;
  return {
    requests: latencies.length,
    throughput: latencies.length / seconds,
    p50: at(0.5),
    p99: at(0.99),
    max: latencies[latencies.length - 1] ?? NaN,
    errors,
    firstError,
  };
}

/** CPU time (user + system) a process has used, in ms; Linux /proc only, else NaN. */
function cpuMs(pid) {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS;
  } catch {
    return NaN;
  }
}
const CLOCK_TICKS = 100;

/**
 * `connections` × `inflight` signed requests on one server; also reports how many cores the
 * server process kept busy meanwhile (`serverCores`: 1.0 is one core saturated).
 */
async function tcpLoad(server, connections, inflight, makeRequest, check) {
  const sockets = await Promise.all(Array.from({ length: connections }, () => Connection.open(server.port)));
  const cpuBefore = cpuMs(server.child.pid);
  const began = performance.now();
  try {
    const result = await load({
      workers: connections * inflight,
      op: async (worker) => {
        const { pattern, data } = makeRequest(worker);
        const reply = await sockets[worker % connections].request(pattern, data);
        return check(reply);
      },
    });
    result.serverCores = (cpuMs(server.child.pid) - cpuBefore) / (performance.now() - began);
    return result;
  } finally {
    sockets.forEach((socket) => socket.close());
  }
}

const pingRequest = () => ({ pattern: 'system.ping', data: sign('system.ping', {}) });
const okReply = (reply) =>
  reply && reply.ok === true && typeof reply.mac === 'string'
    ? null
    : `refused: ${JSON.stringify(reply?.error ?? reply).slice(0, 200)}`;
const echoReply = (reply) => (reply && typeof reply.nonce === 'string' ? null : 'bad echo');

// ---------------------------------------------------------------- processes

function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

const children = new Set();

async function startProcess(name, script, env, nodeArgs = [], ipc = false) {
  const port = await freePort();
  const child = spawn(process.execPath, [...nodeArgs, script], {
    cwd: root,
    env: { ...process.env, ...env, PAI_PORT: String(port), UV_THREADPOOL_SIZE: String(THREADPOOL) },
    stdio: ['ignore', 'pipe', 'pipe', ...(ipc ? ['ipc'] : [])],
  });
  children.add(child);
  let output = '';
  await new Promise((resolve, reject) => {
    const onData = (chunk) => {
      output += chunk;
      if (output.includes('listening on')) resolve();
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', (chunk) => (output += chunk));
    child.once('exit', (code) => reject(new Error(`${name} exited (${code}) before listening:\n${output}`)));
  });
  child.stdout.removeAllListeners('data');
  child.stdout.resume();
  child.stderr.on('data', (chunk) => process.stderr.write(`[${name}] ${chunk}`));
  return {
    port,
    child,
    async stop() {
      if (child.exitCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
      children.delete(child);
    },
  };
}

function startService(name, { databaseUrl, dataDir, extraEnv = {}, preload = [] }) {
  const env = {
    NODE_ENV: 'production',
    PAI_HOST: '127.0.0.1',
    PAI_MAC_KEYS: `${KID}:${KEY.toString('base64')}`,
    PAI_PASSWORD_PEPPER: PEPPER.toString('base64'),
    PAI_BCRYPT_COST: String(BCRYPT_COST),
    PAI_DATA_DIR: dataDir,
    DATABASE_URL: databaseUrl ?? '',
    // As many connections as the raw mysql2 baseline's pool (c=32).
    PAI_DB_POOL_SIZE: String(MYSQL_CONNECTIONS),
    ...extraEnv,
  };
  const nodeArgs = profile
    ? ['--cpu-prof', `--cpu-prof-dir=${join(here, 'profiles')}`, `--cpu-prof-name=${name}.${Date.now()}.cpuprofile`]
    : [];
  for (const file of preload) nodeArgs.push('--import', pathToFileURL(file).href);
  return startProcess(name, join(root, 'dist/src/main.js'), env, nodeArgs, preload.length > 0);
}

const startEcho = () => startProcess('echo', join(here, 'echo-server.mjs'), {});

process.on('exit', () => {
  for (const child of children) child.kill('SIGKILL');
});

// ---------------------------------------------------------------- MySQL

async function mysqlServer() {
  const url = new URL(process.env.DATABASE_URL || 'mysql://root@127.0.0.1:3306/');
  const options = {
    host: url.hostname,
    port: Number(url.port || 3306),
    user: decodeURIComponent(url.username),
    password: decodeURIComponent(url.password),
  };
  try {
    const connection = await mysql.createConnection({ ...options, connectTimeout: 3_000 });
    await connection.end();
  } catch (error) {
    return { available: false, reason: error.message };
  }
  const name = `pai_bench_${randomBytes(4).toString('hex')}`;
  const admin = async (sql) => {
    const connection = await mysql.createConnection(options);
    try {
      await connection.query(sql);
    } finally {
      await connection.end();
    }
  };
  await admin(`CREATE DATABASE \`${name}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci`);
  url.pathname = `/${name}`;
  return {
    available: true,
    url: url.toString(),
    pool: (connectionLimit) =>
      mysql.createPool({ ...options, database: name, connectionLimit, supportBigNumbers: true, bigNumberStrings: true, timezone: 'Z' }),
    drop: () => admin(`DROP DATABASE IF EXISTS \`${name}\``),
  };
}

// ---------------------------------------------------------------- statistics

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
};
const spread = (values) => ({ median: median(values), min: Math.min(...values), max: Math.max(...values) });

function summarize(runs) {
  return {
    throughput: spread(runs.map((run) => run.throughput)),
    p50: spread(runs.map((run) => run.p50)),
    p99: spread(runs.map((run) => run.p99)),
    max: spread(runs.map((run) => run.max)),
    serverCores: runs[0].serverCores === undefined ? null : spread(runs.map((run) => run.serverCores)),
    errors: runs.reduce((sum, run) => sum + run.errors, 0),
    firstError: runs.find((run) => run.firstError)?.firstError ?? null,
    runs,
  };
}

const results = {
  generatedAt: new Date().toISOString(),
  settings: {
    quick,
    rounds: ROUNDS,
    durationMs: DURATION_MS,
    warmupMs: WARMUP_MS,
    cores: CORES,
    uvThreadpoolSize: THREADPOOL,
    mysqlConnections: MYSQL_CONNECTIONS,
    bcryptCost: BCRYPT_COST,
    node: process.version,
    loadavgAtStart: os.loadavg(),
  },
  scenarios: {},
  ratios: {},
};
let totalErrors = 0;
const table = [];

/**
 * A/B in alternation: round i runs A then B when i is even, B then A when odd. The ratio is
 * taken per round (A/B, or B/A for latency), then its median and spread.
 */
async function compare(key, label, a, b, { metric = 'throughput', invert = false } = {}) {
  const aRuns = [];
  const bRuns = [];
  const ratios = [];
  for (let round = 0; round < ROUNDS; round += 1) {
    let ra;
    let rb;
    if (round % 2 === 0) {
      ra = await a.run();
      rb = await b.run();
    } else {
      rb = await b.run();
      ra = await a.run();
    }
    aRuns.push(ra);
    bRuns.push(rb);
    ratios.push(invert ? rb[metric] / ra[metric] : ra[metric] / rb[metric]);
    process.stderr.write('.');
  }
  const entry = {
    label,
    subject: { name: a.name, ...summarize(aRuns) },
    baseline: { name: b.name, ...summarize(bRuns) },
    metric,
    ratio: spread(ratios),
  };
  totalErrors += entry.subject.errors + entry.baseline.errors;
  results.scenarios[key] = entry;
  table.push(entry);
  const cores = (side) => (side.serverCores ? `, ${side.name} server ${side.serverCores.median.toFixed(2)} cores` : '');
  process.stderr.write(` ${key}: ${entry.ratio.median.toFixed(2)}x${cores(entry.subject)}${cores(entry.baseline)}\n`);
  return entry;
}

// ---------------------------------------------------------------- scenarios

const SHAPES = [
  [1, 1],
  [1, 64],
  [8, 16],
];

async function pingVsEcho(tag, service, echo) {
  const entries = {};
  for (const [connections, inflight] of SHAPES) {
    if (shapeArg && shapeArg.slice(8) !== `${connections}x${inflight}`) continue;
    entries[`${connections}x${inflight}`] = await compare(
      `${tag}_ping_vs_echo_${connections}x${inflight}`,
      `${tag}: signed system.ping vs bare Nest echo, ${connections}x${inflight}`,
      { name: 'system.ping', run: () => tcpLoad(service, connections, inflight, pingRequest, okReply) },
      { name: 'Nest TCP echo', run: () => tcpLoad(echo, connections, inflight, pingRequest, echoReply) },
    );
  }
  return entries;
}

async function registerAndLogin(port, username) {
  const connection = await Connection.open(port);
  try {
    const password = 'bench-password-1';
    const registered = await connection.request('auth.register', sign('auth.register', { username, password }));
    if (!registered?.ok) throw new Error(`register failed: ${JSON.stringify(registered)}`);
    const login = await connection.request('auth.login', sign('auth.login', { username, password }));
    if (!login?.ok) throw new Error(`login failed: ${JSON.stringify(login)}`);
    return { userId: login.payload.userId, token: login.payload.token, password };
  } finally {
    connection.close();
  }
}

let referenceCounter = 0;
const nextReference = () => `bench-${noncePrefix}-${(referenceCounter++).toString(36)}`;

async function txVsInsert(tag, service, prepareBaseline) {
  const user = await registerAndLogin(service.port, `bench-tx-${randomBytes(3).toString('hex')}`);
  const insertRow = await prepareBaseline();
  const txRequest = () => ({
    pattern: 'transactions.create',
    data: sign('transactions.create', { token: user.token, amount: '12.50', reference: nextReference() }),
  });
  const out = {};
  for (const concurrency of [1, 32]) {
    if (shapeArg && shapeArg.slice(8) !== `c${concurrency}`) continue;
    const [connections, inflight] = concurrency === 1 ? [1, 1] : [8, 4];
    out[`c${concurrency}`] = await compare(
      `${tag}_tx_vs_insert_c${concurrency}`,
      `${tag}: transactions.create vs raw single-row INSERT, c=${concurrency}`,
      { name: 'transactions.create', run: () => tcpLoad(service, connections, inflight, txRequest, okReply) },
      {
        name: 'raw INSERT',
        run: () =>
          load({
            workers: concurrency,
            op: async () => {
              await insertRow(user.userId, '12.50', nextReference(), new Date());
              return null;
            },
          }),
      },
    );
  }
  return out;
}

async function sqliteScenarios() {
  const dataDir = mkdtempSync(join(os.tmpdir(), 'pai-bench-sqlite-'));
  const service = await startService('pai-sqlite', { dataDir });
  const echo = await startEcho();
  try {
    const ping = wants('ping') ? await pingVsEcho('sqlite', service, echo) : {};
    for (const [shape, entry] of Object.entries(ping)) {
      results.ratios[`ping_vs_echo_${shape}`] = entry.ratio.median;
    }
    if (wants('tx')) {
      // The baseline writes to its own copy of the database (taken once the bench user exists),
      // with the service's settings, so the two never wait on one file lock.
      let raw;
      const tx = await txVsInsert('sqlite', service, async () => {
        const source = new SqliteDatabase(join(dataDir, 'pai.sqlite'), { readonly: true });
        await source.backup(join(dataDir, 'raw.sqlite'));
        source.close();
        raw = new SqliteDatabase(join(dataDir, 'raw.sqlite'));
        raw.pragma('journal_mode = WAL');
        raw.pragma('synchronous = FULL');
        raw.pragma('foreign_keys = ON');
        const insert = raw.prepare(
          'INSERT INTO transacciones (usuario_id, cantidad, referencia, descripcion, creado_en) VALUES (?, ?, ?, NULL, ?)',
        );
        // better-sqlite3 is synchronous: yield after each statement so timers and the other
        // workers run (an event loop serving requests would do no less).
        return async (userId, amount, reference, createdAt) => {
          insert.run(userId, amount, reference, createdAt.toISOString());
          await new Promise((resolve) => setImmediate(resolve));
        };
      });
      for (const [shape, entry] of Object.entries(tx)) {
        results.ratios[`sqlite_tx_vs_insert_${shape}`] = entry.ratio.median;
      }
      raw.close();
    }
  } finally {
    await service.stop();
    await echo.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

async function mysqlScenarios(server) {
  const dataDir = mkdtempSync(join(os.tmpdir(), 'pai-bench-mysql-'));
  const service = await startService('pai-mysql', { databaseUrl: server.url, dataDir });
  const pool = server.pool(MYSQL_CONNECTIONS);
  try {
    if (wants('tx')) {
      const tx = await txVsInsert('mysql', service, async () => (userId, amount, reference, createdAt) =>
        pool.query(
          'INSERT INTO transacciones (usuario_id, cantidad, referencia, descripcion, creado_en) VALUES (?, ?, ?, NULL, ?)',
          [userId, amount, reference, createdAt],
        ),
      );
      for (const [shape, entry] of Object.entries(tx)) results.ratios[`tx_vs_insert_${shape}`] = entry.ratio.median;
    }
    if (wants('shared')) {
      const window = 300_000;
      const entry = await compare(
        'mysql_shared_ping_vs_insert_c32',
        'mysql (shared nonce record): signed system.ping vs raw nonce INSERT, c=32',
        { name: 'system.ping', run: () => tcpLoad(service, 8, 4, pingRequest, okReply) },
        {
          name: 'raw INSERT',
          run: () =>
            load({
              workers: 32,
              op: async () => {
                await pool.query('INSERT INTO nonces_usados (kid, nonce, expira_en) VALUES (?, ?, ?)', [
                  'raw',
                  nextNonce(),
                  Date.now() + window,
                ]);
                return null;
              },
            }),
        },
      );
      results.ratios.shared_ping_vs_insert_c32 = entry.ratio.median;
    }
    if (wants('login')) await loginScenarios(service);
    if (only?.has('probe')) {
      const user = await registerAndLogin(service.port, `bench-probe-${noncePrefix.slice(0, 6)}`);
      const connection = await Connection.open(service.port);
      for (const [name, make] of [
        ['ping', pingRequest],
        ['tx', () => ({ pattern: 'transactions.create', data: sign('transactions.create', { token: user.token, amount: '1.00', reference: nextReference() }) })],
        ['list', () => ({ pattern: 'transactions.list', data: sign('transactions.list', { token: user.token, limit: 1 }) })],
      ]) {
        const began = performance.now();
        for (let i = 0; i < 100; i += 1) {
          const { pattern, data } = make();
          const failure = okReply(await connection.request(pattern, data));
          if (failure) throw new Error(failure);
        }
        process.stderr.write(`probe ${name}: ${((performance.now() - began) / 100).toFixed(2)} ms sequential\n`);
      }
      connection.close();
    }
    if (wants('trips')) {
      results.mysqlStatementsPerRequest = await roundTrips(server);
      process.stderr.write(`statements per request: ${JSON.stringify(results.mysqlStatementsPerRequest)}\n`);
    }
  } finally {
    await pool.end();
    await service.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

/**
 * Statements the service sends to MySQL per request, counted inside the service process
 * (bench/count-queries.mjs), requests sent one at a time.
 */
async function roundTrips(server) {
  const dataDir = mkdtempSync(join(os.tmpdir(), 'pai-bench-count-'));
  const service = await startService('pai-count', {
    databaseUrl: server.url,
    dataDir,
    preload: [join(here, 'count-queries.mjs')],
  });
  const read = () =>
    new Promise((resolve) => {
      service.child.once('message', (message) => resolve(message.counts));
      service.child.send('counts');
    });
  const perRequest = (before, after, requests) => {
    const out = { total: 0 };
    for (const verb of new Set([...Object.keys(before), ...Object.keys(after)])) {
      const n = ((after[verb] ?? 0) - (before[verb] ?? 0)) / requests;
      if (n > 0) {
        out[verb] = n;
        out.total += n;
      }
    }
    return out;
  };
  try {
    const username = `bench-count-${noncePrefix.slice(0, 6)}`;
    const user = await registerAndLogin(service.port, username);
    const connection = await Connection.open(service.port);
    const measure = async (requests, makeRequest) => {
      const before = await read();
      for (let i = 0; i < requests; i += 1) {
        const { pattern, data } = makeRequest();
        const failure = okReply(await connection.request(pattern, data));
        if (failure) throw new Error(failure);
      }
      return perRequest(before, await read(), requests);
    };
    const counts = {
      'system.ping': await measure(50, pingRequest),
      'transactions.create': await measure(50, () => ({
        pattern: 'transactions.create',
        data: sign('transactions.create', { token: user.token, amount: '1.00', reference: nextReference() }),
      })),
      'auth.login': await measure(10, () => ({
        pattern: 'auth.login',
        data: sign('auth.login', { username, password: user.password }),
      })),
    };
    connection.close();
    return counts;
  } finally {
    await service.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

/** One bcrypt compare at the service's cost, as the service runs it (prehashed password). */
function bcryptCompareMs() {
  const input = createHmac('sha384', PEPPER).update('bench-password-1').digest('base64');
  const hash = bcrypt.hashSync(input, BCRYPT_COST);
  const times = [];
  for (let i = 0; i < 5; i += 1) {
    const began = performance.now();
    bcrypt.compareSync(input, hash);
    times.push(performance.now() - began);
  }
  return median(times);
}

async function loginScenarios(service) {
  // One user per worker: logins of one user would trip its throttle (5 failures counted before
  // the password check), and a storm of one user is not what is measured.
  const workers = THREADPOOL * 3;
  const users = [];
  for (let i = 0; i < workers; i += 1) {
    users.push({ username: `bench-login-${noncePrefix.slice(0, 6)}-${i}`, ...(await registerAndLogin(service.port, `bench-login-${noncePrefix.slice(0, 6)}-${i}`)) });
  }
  const loginStorm = (durationMs) =>
    (async () => {
      const connection = await Connection.open(service.port);
      try {
        return await load({
          workers,
          durationMs,
          op: async (worker) => {
            const { username, password } = users[worker];
            const reply = await connection.request('auth.login', sign('auth.login', { username, password }));
            return okReply(reply);
          },
        });
      } finally {
        connection.close();
      }
    })();

  const compareMs = [];
  const login = await compare(
    'mysql_login_vs_bcrypt_bound',
    `mysql: auth.login throughput vs bcrypt bound (${THREADPOOL} libuv threads x 1000 / one compare ms, cost ${BCRYPT_COST})`,
    { name: 'auth.login', run: () => loginStorm(DURATION_MS) },
    {
      name: 'bcrypt bound',
      run: async () => {
        const ms = bcryptCompareMs();
        compareMs.push(ms);
        return { throughput: (THREADPOOL * 1000) / ms, p50: ms, p99: ms, max: ms, errors: 0, firstError: null, requests: 0 };
      },
    },
  );
  login.compareMs = spread(compareMs);
  results.ratios.login_vs_bcrypt_bound = login.ratio.median;

  const storm = await compare(
    'mysql_ping_p99_storm_vs_idle',
    'mysql: system.ping p99 (1x1) during a login storm vs idle (lower is better)',
    {
      name: 'ping during login storm',
      run: async () => {
        const [ping] = await Promise.all([
          tcpLoad(service, 1, 1, pingRequest, okReply),
          loginStorm(DURATION_MS),
        ]);
        return ping;
      },
    },
    { name: 'ping idle', run: () => tcpLoad(service, 1, 1, pingRequest, okReply) },
    { metric: 'p99' },
  );
  results.ratios.ping_p99_storm_vs_idle = storm.ratio.median;
}

function nonceBytes() {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--expose-gc', join(here, 'nonce-memory.mjs')], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let output = '';
    child.stdout.on('data', (chunk) => (output += chunk));
    child.once('exit', (code) =>
      code === 0 ? resolve(JSON.parse(output)) : reject(new Error(`nonce-memory.mjs exited ${code}`)),
    );
  });
}

// ---------------------------------------------------------------- scale-out

const HAPROXY = process.env.HAPROXY_BIN || '/usr/sbin/haproxy';
const REDIS_URL = process.env.PAI_BENCH_REDIS_URL || 'redis://127.0.0.1:6379/0';

/**
 * HAProxy in TCP mode in front of `backends`, started from deploy/haproxy.cfg, the file the
 * deployment and the scale-out tests use, with its addresses filled in from the environment.
 */
async function startHaproxy(name, backends) {
  const port = await freePort();
  const dir = mkdtempSync(join(os.tmpdir(), 'pai-bench-haproxy-'));
  // The file wants two servers; "1 instance" lists the same instance twice.
  const [first, second = backends[0]] = backends;
  const env = {
    ...process.env,
    PAI_LISTEN_ADDR: `127.0.0.1:${port}`,
    PAI_1_ADDR: `127.0.0.1:${first.port}`,
    PAI_1_CHECK_PORT: String(first.httpPort),
    PAI_2_ADDR: `127.0.0.1:${second.port}`,
    PAI_2_CHECK_PORT: String(second.httpPort),
    PAI_HAPROXY_STATS_SOCKET: join(dir, 'admin.sock'),
    // The load client is one address with up to 32 connections.
    PAI_HAPROXY_MAX_CONN_PER_SOURCE: '1000',
  };
  const child = spawn(HAPROXY, ['-db', '-f', join(root, 'deploy', 'haproxy.cfg')], {
    cwd: dir,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  let output = '';
  child.stdout.on('data', (chunk) => (output += chunk));
  child.stderr.on('data', (chunk) => (output += chunk));
  const exited = new Promise((resolve) => child.once('exit', resolve));
  for (let attempt = 0; ; attempt += 1) {
    if (child.exitCode !== null) throw new Error(`${name} exited:\n${output}`);
    const ok = await Connection.open(port).then(
      (c) => (c.close(), true),
      () => false,
    );
    if (ok) break;
    if (attempt > 100) throw new Error(`${name} did not listen:\n${output}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return {
    port,
    child,
    async stop() {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        await exited;
      }
      children.delete(child);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Combined CPU use of several processes, for `serverCores` across instances. */
function groupOf(name, port, members) {
  return { name, port, child: { pid: null }, members };
}

async function groupLoad(front, connections, inflight, makeRequest, check) {
  const before = front.members.map((m) => cpuMs(m.child.pid));
  const began = performance.now();
  const result = await tcpLoad({ port: front.port, child: { pid: 0 } }, connections, inflight, makeRequest, check);
  const elapsed = performance.now() - began;
  result.serverCores = front.members.reduce((sum, m, i) => sum + (cpuMs(m.child.pid) - before[i]), 0) / elapsed;
  return result;
}

/**
 * 1 versus 2 instances on one MySQL database, each behind HAProxy (the same config, one or two
 * servers), same load client. On a 2-core machine the load client, HAProxy, MariaDB and the
 * instances share the cores, so this shows what a second instance adds here, not on real hosts.
 */
async function scaleScenarios(server) {
  const dataDirs = [0, 1].map(() => mkdtempSync(join(os.tmpdir(), 'pai-bench-scale-')));
  const instances = [];
  const proxies = [];
  try {
    for (const [i, dataDir] of dataDirs.entries()) {
      const httpPort = await freePort();
      const instance = await startService(`pai-${i + 1}`, {
        databaseUrl: server.url,
        dataDir,
        // Half the pool each: the two instances together hold what one holds alone. The HTTP
        // side port is HAProxy's health check.
        extraEnv: {
          PAI_NONCE_STORE: 'database',
          PAI_DB_POOL_SIZE: String(MYSQL_CONNECTIONS / 2),
          PAI_HTTP_PORT: String(httpPort),
        },
      });
      instances.push(Object.assign(instance, { httpPort }));
    }
    const one = await startHaproxy('haproxy-1', [instances[0]]);
    proxies.push(one);
    const two = await startHaproxy('haproxy-2', instances);
    proxies.push(two);
    const front1 = groupOf('1 instance', one.port, [instances[0]]);
    const front2 = groupOf('2 instances', two.port, instances);

    const user = await registerAndLogin(two.port, `bench-scale-${randomBytes(3).toString('hex')}`);
    const txRequest = () => ({
      pattern: 'transactions.create',
      data: sign('transactions.create', { token: user.token, amount: '12.50', reference: nextReference() }),
    });
    const workloads = [
      ['ping', 'signed system.ping, 8x4', pingRequest],
      ['tx', 'transactions.create, 8x4', txRequest],
    ];
    for (const [key, label, make] of workloads) {
      const entry = await compare(
        `mysql_scale_${key}_2_vs_1`,
        `mysql behind HAProxy: ${label}, 2 instances vs 1`,
        { name: '2 instances', run: () => groupLoad(front2, 8, 4, make, okReply) },
        { name: '1 instance', run: () => groupLoad(front1, 8, 4, make, okReply) },
      );
      results.ratios[`scale_${key}_2_vs_1`] = entry.ratio.median;
    }
    // bcrypt is CPU bound: the one workload where a second process can add cores' worth of work.
    const users = [];
    for (let i = 0; i < 8; i += 1) {
      const username = `bench-scale-login-${noncePrefix.slice(0, 6)}-${i}`;
      users.push({ username, ...(await registerAndLogin(two.port, username)) });
    }
    const login = (worker) => ({
      pattern: 'auth.login',
      data: sign('auth.login', { username: users[worker % users.length].username, password: users[worker % users.length].password }),
    });
    let worker = 0;
    const loginEntry = await compare(
      'mysql_scale_login_2_vs_1',
      'mysql behind HAProxy: auth.login, 8 in flight, 2 instances vs 1',
      { name: '2 instances', run: () => groupLoad(front2, 8, 1, () => login(worker++), okReply) },
      { name: '1 instance', run: () => groupLoad(front1, 8, 1, () => login(worker++), okReply) },
    );
    results.ratios.scale_login_2_vs_1 = loginEntry.ratio.median;
    const direct = await compare(
      'mysql_haproxy_hop_ping',
      'mysql: signed system.ping 8x4 through HAProxy (1 instance) vs direct (lower than 1 is the hop\'s cost)',
      { name: 'via HAProxy', run: () => groupLoad(front1, 8, 4, pingRequest, okReply) },
      { name: 'direct', run: () => groupLoad(groupOf('direct', instances[0].port, [instances[0]]), 8, 4, pingRequest, okReply) },
    );
    results.ratios.haproxy_hop_ping = direct.ratio.median;
  } finally {
    for (const proxy of proxies) await proxy.stop();
    for (const instance of instances) await instance.stop();
    dataDirs.forEach((dir) => rmSync(dir, { recursive: true, force: true }));
  }
}

/**
 * What a shared nonce record costs against the single-instance one: one instance on MySQL, signed
 * system.ping at 8x4 (the request whose only write is the nonce), with the record in the database
 * table or in Redis, against the in-memory record.
 */
async function nonceCostScenarios() {
  // A database of its own: the in-memory record also checks, against the table, every message
  // dated before the last expiry it finds there at start (rows the scale scenarios left would make
  // it write to the table too). It starts first, on an empty table.
  const server = await mysqlServer();
  const kinds = ['memory', 'database', 'redis'];
  const services = {};
  const dataDirs = [];
  const Redis = require('ioredis');
  const redis = new Redis(REDIS_URL);
  const redisPrefix = `pai-bench:${noncePrefix}:`;
  const usedMemory = async () => Number(/used_memory:(\d+)/.exec(await redis.info('memory'))[1]);
  const memoryBefore = await usedMemory();
  try {
    for (const kind of kinds) {
      const dataDir = mkdtempSync(join(os.tmpdir(), `pai-bench-nonce-${kind}-`));
      dataDirs.push(dataDir);
      services[kind] = await startService(`pai-nonce-${kind}`, {
        databaseUrl: server.url,
        dataDir,
        extraEnv: {
          PAI_NONCE_STORE: kind,
          ...(kind === 'redis' ? { PAI_REDIS_URL: REDIS_URL, PAI_REDIS_PREFIX: redisPrefix } : {}),
        },
      });
    }
    for (const kind of ['database', 'redis']) {
      const entry = await compare(
        `mysql_nonce_${kind}_vs_memory`,
        `mysql: signed system.ping 8x4, ${kind} nonce record vs in-memory (single instance)`,
        { name: `${kind} record`, run: () => tcpLoad(services[kind], 8, 4, pingRequest, okReply) },
        { name: 'memory record', run: () => tcpLoad(services.memory, 8, 4, pingRequest, okReply) },
      );
      results.ratios[`nonce_${kind}_vs_memory_ping`] = entry.ratio.median;
    }
    // Every message of the Redis runs is still held (their window has not ended): Redis's memory
    // growth over the keys it holds under the bench's prefix.
    let keys = 0;
    let cursor = '0';
    do {
      const [next, batch] = await redis.scan(cursor, 'MATCH', `${redisPrefix}nonce:*`, 'COUNT', 10_000);
      cursor = next;
      keys += batch.length;
    } while (cursor !== '0');
    const bytes = (await usedMemory()) - memoryBefore;
    results.redisNonce = { keys, bytesPerMessage: bytes / keys };
    process.stderr.write(`redis nonce record: ${keys} pairs, ${(bytes / keys).toFixed(1)} bytes each\n`);
  } finally {
    // The bench's pairs would otherwise stay for the window.
    const stream = redis.scanStream({ match: `${redisPrefix}*`, count: 10_000 });
    for await (const batch of stream) if (batch.length > 0) await redis.unlink(...batch);
    await redis.quit();
    for (const service of Object.values(services)) await service.stop();
    dataDirs.forEach((dir) => rmSync(dir, { recursive: true, force: true }));
    await server.drop();
  }
}

// ---------------------------------------------------------------- report

const fmt = (n, digits = 0) => (Number.isFinite(n) ? n.toFixed(digits) : '-');
const range = (s, digits = 0) => `${fmt(s.median, digits)} (${fmt(s.min, digits)}–${fmt(s.max, digits)})`;

function printTable() {
  const lines = [
    '| scenario | subject req/s | subject p50 / p99 / max ms | baseline req/s | baseline p50 / p99 / max ms | ratio (min–max) |',
    '| --- | --- | --- | --- | --- | --- |',
  ];
  for (const e of table) {
    const lat = (s) => `${fmt(s.p50.median, 2)} / ${fmt(s.p99.median, 2)} / ${fmt(s.max.median, 1)}`;
    lines.push(
      `| ${e.label} | ${range(e.subject.throughput)} | ${lat(e.subject)} | ${range(e.baseline.throughput)} | ${lat(e.baseline)} | ${range(e.ratio, 2)} |`,
    );
  }
  if (results.redisNonce) {
    lines.push(
      `| Redis nonce record, bytes of Redis memory per accepted message held (${results.redisNonce.keys} messages) | ${fmt(results.redisNonce.bytesPerMessage, 1)} | | | | |`,
    );
  }
  if (results.nonce) {
    lines.push(
      `| nonce record, bytes per accepted message held (${results.nonce.messages} messages) | ${fmt(results.nonce.memory.bytesPerMessage, 1)} (memory record) | | ${fmt(results.nonce.stringMap.bytesPerMessage, 1)} (Map of strings) | | ${fmt(results.nonce.memory.bytesPerMessage / results.nonce.stringMap.bytesPerMessage, 2)} |`,
    );
  }
  return lines.join('\n');
}

async function main() {
  process.stderr.write(
    `bench: ${ROUNDS} rounds x ${DURATION_MS} ms (+${WARMUP_MS} ms warm-up), ${CORES} cores, UV_THREADPOOL_SIZE=${THREADPOOL}, load ${os.loadavg().map((n) => n.toFixed(1)).join(' ')}\n`,
  );
  if (wants('nonce')) {
    results.nonce = await nonceBytes();
    results.nonce_bytes_per_message = results.nonce.memory.bytesPerMessage;
    process.stderr.write(`nonce bytes/message: ${fmt(results.nonce_bytes_per_message, 1)}\n`);
  }
  if (wants('ping') || wants('tx')) await sqliteScenarios();
  if (['tx', 'shared', 'login', 'trips', 'scale', 'noncecost'].some(wants) || only?.has('probe')) {
    const server = await mysqlServer();
    results.settings.mysql = server.available ? 'available' : `unavailable: ${server.reason}`;
    if (server.available) {
      try {
        if (['tx', 'shared', 'login', 'trips'].some(wants) || only?.has('probe')) await mysqlScenarios(server);
        if (wants('scale')) await scaleScenarios(server);
        if (wants('noncecost')) await nonceCostScenarios();
      } finally {
        await server.drop();
      }
    } else {
      process.stderr.write(`MySQL scenarios skipped: ${server.reason}\n`);
    }
  }
  results.settings.loadavgAtEnd = os.loadavg();
  results.errors = totalErrors;
  results.table = printTable();
  mkdirSync(here, { recursive: true });
  writeFileSync(join(here, 'results.json'), JSON.stringify(results, null, 2) + '\n');
  console.log(results.table);
  console.log('\nratios:', JSON.stringify(results.ratios, null, 2));
  if (totalErrors > 0) {
    console.error(`\nFAILED: ${totalErrors} request(s) failed; first: ${table.map((e) => e.subject.firstError ?? e.baseline.firstError).find(Boolean)}`);
    process.exitCode = 1;
  }
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
