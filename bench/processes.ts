/**
 * The service and the echo baseline as processes of their own, never in the load client's: both
 * started by test/support/service-process, the service from its build as production runs it.
 */
import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import {
  BUILT_SERVICE,
  serviceEnv,
  startServiceProcess,
  type ServiceProcess,
} from '../test/support/service-process';
import type { TestDatabase } from '../test/support/test-database';
import type { Target } from './load';
import { KEY, KID, PEPPER } from './requests';
import { BCRYPT_COST, MYSQL_CONNECTIONS, type Settings } from './settings';

export interface Server extends Target {
  readonly name: string;
  readonly process: ServiceProcess;
  stop(): Promise<void>;
}

const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

/** Remembers a process the bench started, to SIGKILL it if the bench exits first. */
export function track(child: ChildProcess): void {
  running.add(child);
  child.once('exit', () => running.delete(child));
}

async function start(
  name: string,
  env: NodeJS.ProcessEnv,
  options: Parameters<typeof startServiceProcess>[1],
): Promise<Server> {
  const started = await startServiceProcess(env, {
    ...options,
    // A service logs a line per request: its output after the start is drained, not kept.
    keepOutput: false,
  });
  const { child } = started;
  track(child);
  child.stderr?.on('data', (chunk: Buffer) =>
    process.stderr.write(`[${name}] ${chunk.toString()}`),
  );
  return {
    name,
    port: started.port,
    pids: [child.pid ?? NaN],
    process: started,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      // SIGTERM: a service under --cpu-prof writes its profile on a clean exit only.
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await started.exited;
      clearTimeout(timer);
    },
  };
}

export interface ServiceOptions {
  database: TestDatabase;
  /** PAI_DATA_DIR: a directory of the instance's own. */
  dataDir: string;
  extraEnv?: Record<string, string>;
  /** Modules node imports before the service (`--import`). */
  preload?: string[];
}

export function startService(
  settings: Settings,
  name: string,
  { database, dataDir, extraEnv = {}, preload = [] }: ServiceOptions,
): Promise<Server> {
  if (!existsSync(BUILT_SERVICE)) {
    throw new Error(`${BUILT_SERVICE} is missing: npm run build first`);
  }
  const env = serviceEnv(database, {
    NODE_ENV: 'production',
    PAI_MAC_KEYS: `${KID}:${KEY.toString('base64')}`,
    PAI_PASSWORD_PEPPER: PEPPER.toString('base64'),
    PAI_LEDGER_KEY: PEPPER.toString('base64'),
    PAI_BCRYPT_COST: String(BCRYPT_COST),
    PAI_DATA_DIR: dataDir,
    // As many connections as the raw mysql2 baseline's pool.
    PAI_DB_POOL_SIZE: String(MYSQL_CONNECTIONS),
    UV_THREADPOOL_SIZE: String(settings.threadpool),
    ...extraEnv,
  });
  const nodeArgs = settings.profile
    ? [
        '--cpu-prof',
        `--cpu-prof-dir=${join(__dirname, 'profiles')}`,
        `--cpu-prof-name=${name}.${Date.now()}.cpuprofile`,
      ]
    : [];
  for (const file of preload) {
    nodeArgs.push('--import', pathToFileURL(file).href);
  }
  return start(name, env, {
    script: BUILT_SERVICE,
    nodeArgs,
    ipc: preload.length > 0,
  });
}

/** The baseline of the ping scenarios: a bare Nest TCP echo (bench/echo-server.mts). */
export function startEcho(settings: Settings): Promise<Server> {
  return start(
    'echo',
    {
      ...process.env,
      PAI_PORT: '0',
      UV_THREADPOOL_SIZE: String(settings.threadpool),
    },
    { script: join(__dirname, 'echo-server.mts') },
  );
}
