#!/usr/bin/env node
/**
 * The one command line that runs jest, for every npm test script:
 *
 *   node scripts/jest.mjs <projects> [--mariadb] [jest arguments…]
 *
 * <projects> is a comma-separated list of jest.config.ts projects (unit, e2e, resilience, scale).
 * --mariadb runs the suites on the machine's MariaDB: DATABASE_URL, when not set already, becomes
 * MARIADB_URL below (each suite then makes a fresh database of its own on that server).
 *
 * Node runs jest with --experimental-vm-modules: Nest's packages are ES modules, which jest can
 * load only through Node's vm modules. The warning that flag prints on every run is silenced.
 */
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';

const MARIADB_URL = 'mysql://root@127.0.0.1:3306/pai_test';

const [projects, ...rest] = process.argv.slice(2);
if (!projects || projects.startsWith('-')) {
  console.error(
    'usage: node scripts/jest.mjs <projects> [--mariadb] [jest arguments]',
  );
  process.exit(2);
}
const env = { ...process.env };
if (rest.includes('--mariadb')) env.DATABASE_URL ||= MARIADB_URL;
const jestArgs = rest.filter((arg) => arg !== '--mariadb');

const jest = createRequire(import.meta.url).resolve('jest/bin/jest');
const child = spawn(
  process.execPath,
  [
    '--experimental-vm-modules',
    '--disable-warning=ExperimentalWarning',
    jest,
    // Last: --selectProjects takes every value up to the next option.
    ...jestArgs,
    '--selectProjects',
    ...projects.split(','),
  ],
  { stdio: 'inherit', env },
);
child.on('exit', (code, signal) => {
  if (signal) process.kill(process.pid, signal);
  else process.exit(code ?? 1);
});
