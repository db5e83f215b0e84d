// `npm run bench`: the service against baselines measured in the same run.
//
// Every scenario runs a subject (A) and its baseline (B) in alternation, several rounds, with the
// same load client; it reports medians with their spread (min–max over the rounds) and the ratio of
// each round, and writes bench/results.json (a --quick run: results.quick.json). The service and the echo baseline run in child
// processes (node dist/src/main.js, bench/echo-server.mts), never in the load client's process.
//
//   npm run bench                  full run (5 rounds of 3 s per measurement)
//   npm run bench -- --quick       2 rounds of 1 s, for development
//   npm run bench -- --only=ping,tx,shared,login,nonce,trips   (probe: sequential latencies on MySQL)
//   npm run bench -- --only=scale,noncecost   1 vs 2 instances behind HAProxy; the shared nonce
//                                  records (database, Redis) against the in-memory one
//   npm run bench -- --only=ledger   transactions.create with the ledger's sealer and without
//   npm run bench -- --profile     the service runs with --cpu-prof (bench/profiles/)
//   npm run bench -- --threads=2   another UV_THREADPOOL_SIZE (default: cores - 1)
//   npm run bench -- --only=ping --shape=8x16   one connection shape only (tx: --shape=c32)
//
// DATABASE_URL names the MySQL/MariaDB server to use (a bench database is created on it and
// dropped); without it the machine's MariaDB at root@127.0.0.1:3306 is used if it answers. A part
// whose server or tool is missing (MySQL, HAProxy, Redis) is skipped, saying why, and the rest
// still runs and is written.
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { HAPROXY_BIN, haproxyInstalled } from '../test/support/haproxy';
import { mysqlServer } from './databases';
import { Report } from './report';
import { ledgerScenarios } from './scenarios/ledger';
import { mysqlScenarios } from './scenarios/mysql';
import { nonceCostScenarios } from './scenarios/nonce-cost';
import { nonceMemory } from './scenarios/nonce-memory';
import { scaleScenarios } from './scenarios/scale';
import { sqliteScenarios } from './scenarios/sqlite';
import { parseSettings, UsageError, USAGE, type Settings } from './settings';

async function main(settings: Settings): Promise<boolean> {
  const report = new Report(settings);
  const { results } = report;
  const wants = settings.wants;
  process.stderr.write(
    `bench: ${settings.rounds} rounds x ${settings.durationMs} ms (+${settings.warmupMs} ms warm-up), ${settings.cores} cores, UV_THREADPOOL_SIZE=${settings.threadpool}, load ${loadavg()
      .map((n) => n.toFixed(1))
      .join(' ')}\n`,
  );
  if (wants('nonce')) {
    await report.part('nonce', async () => {
      const nonce = await nonceMemory();
      results.nonce = nonce;
      results.nonce_bytes_per_message = nonce.memory.bytesPerMessage;
      process.stderr.write(
        `nonce bytes/message: ${nonce.memory.bytesPerMessage.toFixed(1)}\n`,
      );
    });
  }
  if (wants('ping') || wants('tx')) {
    await report.part('sqlite', () => sqliteScenarios(settings, report));
  }
  if (wants('ledger')) {
    await report.part('ledger', () => ledgerScenarios(settings, report));
  }
  const single = (['tx', 'shared', 'login', 'trips', 'probe'] as const).some(
    wants,
  );
  if (single || wants('scale') || wants('noncecost')) {
    const server = await mysqlServer();
    results.settings.mysql = server.available
      ? 'available'
      : `unavailable: ${server.reason}`;
    if (server.available) {
      try {
        if (single) {
          await report.part('mysql', () =>
            mysqlScenarios(settings, report, server),
          );
        }
        if (wants('scale')) {
          if (haproxyInstalled) {
            await report.part('scale', () =>
              scaleScenarios(settings, report, server),
            );
          } else {
            report.skip(
              'scale',
              `HAProxy not found at ${HAPROXY_BIN} (HAPROXY_BIN names another)`,
            );
          }
        }
        if (wants('noncecost')) {
          await report.part('noncecost', () =>
            nonceCostScenarios(settings, report),
          );
        }
      } finally {
        await server.drop();
      }
    } else {
      process.stderr.write(`MySQL scenarios skipped: ${server.reason}\n`);
      results.skipped.mysql = server.reason;
    }
  }
  // The committed record is a run of full rounds; a quick one must not replace it.
  return report.finish(
    join(__dirname, settings.quick ? 'results.quick.json' : 'results.json'),
  );
}

let settings: Settings;
try {
  settings = parseSettings(process.argv.slice(2));
} catch (error) {
  if (!(error instanceof UsageError)) throw error;
  console.error(`${error.message}\n${USAGE}`);
  process.exit(2);
}
main(settings).then(
  (ok) => {
    if (!ok) process.exitCode = 1;
  },
  (error: unknown) => {
    console.error(error);
    process.exitCode = 1;
  },
);
