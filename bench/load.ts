import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { connect, send, type Check, type Sent } from './requests';
import { REQUEST_TIMEOUT_MS, type Timing } from './settings';

export interface LoadResult {
  /** Requests answered inside the measured time. */
  requests: number;
  throughput: number;
  p50: number;
  p99: number;
  max: number;
  errors: number;
  firstError: string | null;
  /** Cores the server's processes kept busy meanwhile: 1.0 is one core saturated. */
  serverCores?: number;
  /** Cores the load client itself kept busy during the load alone (pre-signing excluded). */
  clientCores?: number;
  /** Requests the client had to sign during the load, the pre-signed ones being used up. */
  signedDuringRun?: number;
}

/** One operation; resolves with null on success, or with what went wrong. */
export type Operation = (worker: number) => Promise<string | null>;

/**
 * Keeps `workers` operations in flight (each worker starts its next one as soon as the last one
 * answered) for the warm-up and then `durationMs`, and measures the latter.
 */
export async function load(
  timing: Timing,
  {
    workers,
    op,
    durationMs = timing.durationMs,
  }: { workers: number; op: Operation; durationMs?: number },
): Promise<LoadResult> {
  const latencies: number[] = [];
  let measuring = false;
  let stopped = false;
  let errors = 0;
  let firstError: string | null = null;
  let startedAt = 0;
  let endedAt = 0;
  const warm = setTimeout(() => {
    measuring = true;
    startedAt = performance.now();
  }, timing.warmupMs);
  const stop = setTimeout(() => {
    stopped = true;
    endedAt = performance.now();
  }, timing.warmupMs + durationMs);
  const loop = async (worker: number) => {
    while (!stopped) {
      const began = performance.now();
      let failure: string | null;
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
  let watchdog: NodeJS.Timeout | undefined;
  const finished = Promise.all(
    Array.from({ length: workers }, (_, index) => loop(index)),
  );
  const timedOut = new Promise<'timeout'>((resolve) => {
    watchdog = setTimeout(
      () => resolve('timeout'),
      timing.warmupMs + durationMs + REQUEST_TIMEOUT_MS,
    );
  });
  if ((await Promise.race([finished, timedOut])) === 'timeout') {
    errors += 1;
    firstError ??= `requests still pending ${REQUEST_TIMEOUT_MS} ms after the end`;
  }
  clearTimeout(watchdog);
  clearTimeout(warm);
  clearTimeout(stop);
  latencies.sort((a, b) => a - b);
  const at = (q: number) =>
    latencies[
      Math.min(latencies.length - 1, Math.floor(q * latencies.length))
    ] ?? NaN;
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

const CLOCK_TICKS = 100;

/** CPU time (user + system) a process has used, in ms; Linux /proc only, else NaN. */
export function cpuMs(pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8')
      .split(') ')[1]
      .split(' ');
    // utime and stime, fields 14 and 15 of the line, in clock ticks.
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS;
  } catch {
    return NaN;
  }
}

/** Where the load goes, and the processes whose CPU counts as the server's. */
export interface Target {
  port: number;
  pids: readonly number[];
}

/**
 * `connections` × `inflight` requests in flight on one target (each connection carries
 * `inflight` of them), and how many cores the target's processes kept busy meanwhile.
 */
export async function tcpLoad(
  timing: Timing,
  target: Target,
  connections: number,
  inflight: number,
  makeRequest: (worker: number) => Sent,
  check: Check,
  { presignPerSecond = 0 }: { presignPerSecond?: number } = {},
): Promise<LoadResult> {
  const clients = await Promise.all(
    Array.from({ length: connections }, () => connect(target.port)),
  );
  // Signed before the load starts, so that the client's HMACs are not part of the pace it
  // measures (each envelope's ts stays well inside the freshness window over one run).
  const presigned = Array.from(
    {
      length: Math.ceil(
        (presignPerSecond * (timing.warmupMs + timing.durationMs)) / 1000,
      ),
    },
    (_, index) => makeRequest(index),
  );
  let used = 0;
  let signedDuringRun = 0;
  const nextRequest = (worker: number): Sent => {
    if (used < presigned.length) return presigned[used++];
    signedDuringRun += 1;
    return makeRequest(worker);
  };
  const clientCpuBefore = process.cpuUsage();
  const serverCpu = () => target.pids.reduce((sum, pid) => sum + cpuMs(pid), 0);
  const cpuBefore = serverCpu();
  const began = performance.now();
  try {
    const result = await load(timing, {
      workers: connections * inflight,
      op: async (worker) => {
        const sent = nextRequest(worker);
        const reply = await send(clients[worker % connections], sent);
        return check(reply, sent);
      },
    });
    const elapsed = performance.now() - began;
    result.serverCores = (serverCpu() - cpuBefore) / elapsed;
    const clientCpu = process.cpuUsage(clientCpuBefore);
    result.clientCores = (clientCpu.user + clientCpu.system) / 1000 / elapsed;
    result.signedDuringRun = signedDuringRun;
    if (
      result.errors > 0 &&
      clients.some((client) => client.socket.destroyed)
    ) {
      result.firstError = `a connection was closed by the server; ${result.firstError}`;
    }
    return result;
  } finally {
    clients.forEach((client) => client.close());
  }
}
