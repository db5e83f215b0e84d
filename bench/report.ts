import { writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import type { LoadResult } from './load';
import {
  BCRYPT_COST,
  MYSQL_CONNECTIONS,
  type Scenario,
  type Settings,
} from './settings';

export interface Spread {
  median: number;
  min: number;
  max: number;
}

/** One measurement, with what the load client itself spent on it. */
export interface Run extends LoadResult {
  /** CPU time (user + system) of the load client's process during the run. */
  clientCpuMs: number;
  /** That over the run's wall time: near 1.0, the client's one thread set the pace. */
  clientCores: number;
}

export interface Side {
  name: string;
  run: () => Promise<LoadResult>;
}

export interface SideSummary {
  name: string;
  throughput: Spread;
  p50: Spread;
  p99: Spread;
  max: Spread;
  serverCores: Spread | null;
  clientCpuMs: Spread;
  clientCores: Spread;
  errors: number;
  firstError: string | null;
  runs: Run[];
}

export interface Entry {
  label: string;
  subject: SideSummary;
  baseline: SideSummary;
  metric: 'throughput' | 'p99';
  ratio: Spread;
  /** The login scenario: one bcrypt compare, ms. */
  compareMs?: Spread;
}

export interface NonceMemory {
  messages: number;
  windowMs: number;
  memory: { bytesPerMessage: number; tableBytes: number };
  stringMap: { bytesPerMessage: number };
}

/** Per verb, and in total, statements per request. */
export type StatementCounts = Record<string, Record<string, number>>;

/** What bench/results.json holds. */
export interface Results {
  generatedAt: string;
  settings: {
    quick: boolean;
    rounds: number;
    durationMs: number;
    warmupMs: number;
    cores: number;
    uvThreadpoolSize: number;
    mysqlConnections: number;
    bcryptCost: number;
    node: string;
    loadavgAtStart: number[];
    mysql?: string;
    loadavgAtEnd?: number[];
  };
  scenarios: Record<string, Entry>;
  ratios: Record<string, number>;
  /** Parts that did not run, and why (a tool or server missing). */
  skipped: Record<string, string>;
  /** Parts that stopped on an error, and its message. */
  failed: Record<string, string>;
  nonce?: NonceMemory;
  nonce_bytes_per_message?: number;
  mysqlStatementsPerRequest?: StatementCounts;
  redisNonce?: { keys: number; bytesPerMessage: number };
  errors?: number;
  table?: string;
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2
    ? sorted[middle]
    : (sorted[middle - 1] + sorted[middle]) / 2;
}

export const spread = (values: readonly number[]): Spread => ({
  median: median(values),
  min: Math.min(...values),
  max: Math.max(...values),
});

function summarize(name: string, runs: Run[]): SideSummary {
  const of = (field: 'throughput' | 'p50' | 'p99' | 'max') =>
    spread(runs.map((run) => run[field]));
  return {
    name,
    throughput: of('throughput'),
    p50: of('p50'),
    p99: of('p99'),
    max: of('max'),
    serverCores:
      runs[0].serverCores === undefined
        ? null
        : spread(runs.map((run) => run.serverCores ?? NaN)),
    clientCpuMs: spread(runs.map((run) => run.clientCpuMs)),
    clientCores: spread(runs.map((run) => run.clientCores)),
    errors: runs.reduce((sum, run) => sum + run.errors, 0),
    firstError: runs.find((run) => run.firstError)?.firstError ?? null,
    runs,
  };
}

/** A side's run, with the load client's own CPU time over it. */
async function measure(side: Side): Promise<Run> {
  const cpuBefore = process.cpuUsage();
  const began = performance.now();
  const result = await side.run();
  const cpu = process.cpuUsage(cpuBefore);
  const clientCpuMs = (cpu.user + cpu.system) / 1000;
  return {
    ...result,
    clientCpuMs,
    // The load's own figure when it has one: it leaves out connecting and pre-signing.
    clientCores:
      result.clientCores ?? clientCpuMs / (performance.now() - began),
  };
}

const fmt = (n: number, digits = 0) =>
  Number.isFinite(n) ? n.toFixed(digits) : '-';
const range = (s: Spread, digits = 0) =>
  `${fmt(s.median, digits)} (${fmt(s.min, digits)}–${fmt(s.max, digits)})`;

/** The run's results as they are measured: compared scenarios, figures, parts skipped or failed. */
export class Report {
  readonly results: Results;
  private readonly table: Entry[] = [];
  private errors = 0;

  constructor(private readonly settings: Settings) {
    this.results = {
      generatedAt: new Date().toISOString(),
      settings: {
        quick: settings.quick,
        rounds: settings.rounds,
        durationMs: settings.durationMs,
        warmupMs: settings.warmupMs,
        cores: settings.cores,
        uvThreadpoolSize: settings.threadpool,
        mysqlConnections: MYSQL_CONNECTIONS,
        bcryptCost: BCRYPT_COST,
        node: process.version,
        loadavgAtStart: loadavg(),
      },
      scenarios: {},
      ratios: {},
      skipped: {},
      failed: {},
    };
  }

  /**
   * Subject (A) against baseline (B) in alternation: round i runs A then B when i is even, B then
   * A when odd. The ratio is taken per round (A/B, or B/A with `invert`), then its median and
   * spread.
   */
  async compare(
    key: string,
    label: string,
    a: Side,
    b: Side,
    {
      metric = 'throughput',
      invert = false,
    }: { metric?: Entry['metric']; invert?: boolean } = {},
  ): Promise<Entry> {
    const aRuns: Run[] = [];
    const bRuns: Run[] = [];
    const ratios: number[] = [];
    for (let round = 0; round < this.settings.rounds; round += 1) {
      let ra: Run;
      let rb: Run;
      if (round % 2 === 0) {
        ra = await measure(a);
        rb = await measure(b);
      } else {
        rb = await measure(b);
        ra = await measure(a);
      }
      aRuns.push(ra);
      bRuns.push(rb);
      ratios.push(invert ? rb[metric] / ra[metric] : ra[metric] / rb[metric]);
      process.stderr.write('.');
    }
    const entry: Entry = {
      label,
      subject: summarize(a.name, aRuns),
      baseline: summarize(b.name, bRuns),
      metric,
      ratio: spread(ratios),
    };
    this.errors += entry.subject.errors + entry.baseline.errors;
    this.results.scenarios[key] = entry;
    this.table.push(entry);
    const cores = (side: SideSummary) =>
      side.serverCores
        ? `, ${side.name} server ${side.serverCores.median.toFixed(2)} cores`
        : '';
    process.stderr.write(
      ` ${key}: ${entry.ratio.median.toFixed(2)}x${cores(entry.subject)}${cores(entry.baseline)}` +
        `, load client ${entry.subject.clientCores.median.toFixed(2)} / ${entry.baseline.clientCores.median.toFixed(2)} cores\n`,
    );
    return entry;
  }

  /** Runs one part of the bench; an error stops that part only, and is recorded. */
  async part(name: Scenario | 'sqlite' | 'mysql', body: () => Promise<void>) {
    try {
      await body();
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      this.results.failed[name] = message;
      process.stderr.write(`\n${name} failed: ${message}\n`);
    }
  }

  skip(name: string, reason: string): void {
    this.results.skipped[name] = reason;
    process.stderr.write(`${name} skipped: ${reason}\n`);
  }

  /** Fills in the last figures and writes `file`; true when nothing failed. */
  finish(file: string): boolean {
    const { results } = this;
    results.settings.loadavgAtEnd = loadavg();
    results.errors = this.errors;
    results.table = this.markdown();
    writeFileSync(file, JSON.stringify(results, null, 2) + '\n');
    console.log(results.table);
    console.log('\nratios:', JSON.stringify(results.ratios, null, 2));
    if (this.errors > 0) {
      const first = this.table
        .map((e) => e.subject.firstError ?? e.baseline.firstError)
        .find(Boolean);
      console.error(
        `\nFAILED: ${this.errors} request(s) failed; first: ${first}`,
      );
    }
    for (const [name, reason] of Object.entries(results.skipped)) {
      console.error(`skipped ${name}: ${reason}`);
    }
    for (const [name, message] of Object.entries(results.failed)) {
      console.error(`FAILED ${name}: ${message}`);
    }
    return this.errors === 0 && Object.keys(results.failed).length === 0;
  }

  private markdown(): string {
    const { results } = this;
    const lines = [
      '| scenario | subject req/s | subject p50 / p99 / max ms | baseline req/s | baseline p50 / p99 / max ms | ratio (min–max) |',
      '| --- | --- | --- | --- | --- | --- |',
    ];
    const lat = (s: SideSummary) =>
      `${fmt(s.p50.median, 2)} / ${fmt(s.p99.median, 2)} / ${fmt(s.max.median, 1)}`;
    for (const e of this.table) {
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
      const { nonce } = results;
      lines.push(
        `| nonce record, bytes per accepted message held (${nonce.messages} messages) | ${fmt(nonce.memory.bytesPerMessage, 1)} (memory record) | | ${fmt(nonce.stringMap.bytesPerMessage, 1)} (Map of strings) | | ${fmt(nonce.memory.bytesPerMessage / nonce.stringMap.bytesPerMessage, 2)} |`,
      );
    }
    return lines.join('\n');
  }
}
