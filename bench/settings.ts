import { availableParallelism } from 'node:os';

/** What `--only` can name; `probe` runs only when named. */
export const SCENARIOS = [
  'nonce',
  'ping',
  'tx',
  'shared',
  'login',
  'trips',
  'probe',
  'scale',
  'noncecost',
  'ledger',
] as const;
export type Scenario = (typeof SCENARIOS)[number];

/** What `--shape` can name: connections x in flight for ping, concurrency for tx. */
export const SHAPES = ['1x1', '1x64', '8x16', 'c1', 'c32'] as const;

export const USAGE = `usage: npm run bench -- [--quick] [--only=${SCENARIOS.join(',')}]
                     [--shape=${SHAPES.join('|')}] [--threads=N] [--profile]`;

export const BCRYPT_COST = 10;
/** The raw mysql2 baseline's pool, and so the service's PAI_DB_POOL_SIZE. */
export const MYSQL_CONNECTIONS = 32;
/** How long requests may still be pending once a measurement has ended. */
export const REQUEST_TIMEOUT_MS = 15_000;

export interface Timing {
  warmupMs: number;
  durationMs: number;
}

export interface Settings extends Timing {
  quick: boolean;
  profile: boolean;
  rounds: number;
  cores: number;
  /** UV_THREADPOOL_SIZE of every service process, and the bcrypt bound's thread count. */
  threadpool: number;
  /** The one connection shape to run, or null for all. */
  shape: string | null;
  /** Named by --only, or no --only given; `probe` only when named. */
  wants: (scenario: Scenario) => boolean;
}

export class UsageError extends Error {}

export function parseSettings(args: readonly string[]): Settings {
  let quick = false;
  let profile = false;
  let only: Set<string> | null = null;
  let shape: string | null = null;
  let threads: number | null = null;
  for (const arg of args) {
    const [name, value] = arg.includes('=')
      ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)]
      : [arg, undefined];
    if (name === '--quick' && value === undefined) quick = true;
    else if (name === '--profile' && value === undefined) profile = true;
    else if (name === '--only' && value) {
      only = new Set(value.split(','));
      const unknown = [...only].filter(
        (item) => !(SCENARIOS as readonly string[]).includes(item),
      );
      if (unknown.length > 0) {
        throw new UsageError(`unknown scenario: ${unknown.join(', ')}`);
      }
    } else if (name === '--shape' && value) {
      if (!(SHAPES as readonly string[]).includes(value)) {
        throw new UsageError(`unknown shape: ${value}`);
      }
      shape = value;
    } else if (name === '--threads' && value) {
      threads = Number(value);
      if (!Number.isInteger(threads) || threads < 1) {
        throw new UsageError('--threads must be a whole number of at least 1');
      }
    } else {
      throw new UsageError(`unknown option: ${arg}`);
    }
  }
  const cores = availableParallelism();
  return {
    quick,
    profile,
    rounds: quick ? 2 : 5,
    durationMs: quick ? 1_000 : 3_000,
    warmupMs: quick ? 300 : 700,
    cores,
    // The libuv pool runs bcrypt. One core is left to the event loop, so the pool never starves
    // the loop that answers everything else.
    threadpool: threads ?? Math.max(1, cores - 1),
    shape,
    wants: (scenario) => (only ? only.has(scenario) : scenario !== 'probe'),
  };
}
