import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { MysqlServer } from '../databases';
import { load, tcpLoad } from '../load';
import { startService, type Server } from '../processes';
import type { Report } from '../report';
import {
  connect,
  send,
  nextNonce,
  okReply,
  pingRequest,
  registerAndLogin,
  runId,
  signed,
  txRequest,
  type Sent,
  PRESIGN,
} from '../requests';
import { MYSQL_CONNECTIONS, type Settings } from '../settings';
import { loginScenarios } from './login';
import { roundTrips } from './round-trips';
import { txVsInsert } from './tx-vs-insert';

/** Sequential latencies, 100 requests each, printed only: where a request's time goes. */
async function probe(service: Server): Promise<void> {
  const user = await registerAndLogin(
    service.port,
    `bench-probe-${runId.slice(0, 6)}`,
  );
  const client = await connect(service.port);
  try {
    const requests: [string, () => Sent][] = [
      ['ping', pingRequest],
      ['tx', () => txRequest(user.token, '1.00')],
      [
        'list',
        () => signed('transactions.list', { token: user.token, limit: 1 }),
      ],
    ];
    for (const [name, make] of requests) {
      const began = performance.now();
      for (let i = 0; i < 100; i += 1) {
        const sent = make();
        const failure = okReply(await send(client, sent), sent);
        if (failure) throw new Error(failure);
      }
      process.stderr.write(
        `probe ${name}: ${((performance.now() - began) / 100).toFixed(2)} ms sequential\n`,
      );
    }
  } finally {
    client.close();
  }
}

/** One instance on MySQL (the shared nonce record): tx, shared, login, probe, trips. */
export async function mysqlScenarios(
  settings: Settings,
  report: Report,
  server: Extract<MysqlServer, { available: true }>,
): Promise<void> {
  const { ratios } = report.results;
  const dataDir = mkdtempSync(join(tmpdir(), 'pai-bench-mysql-'));
  const pool = server.pool(MYSQL_CONNECTIONS);
  try {
    const service = await startService(settings, 'pai-mysql', {
      database: server.database,
      dataDir,
    });
    try {
      if (settings.wants('tx')) {
        const tx = await txVsInsert(settings, report, 'mysql', service, () =>
          Promise.resolve((userId, amount, reference, createdAt) =>
            pool.query(
              'INSERT INTO transacciones (usuario_id, cantidad, referencia, descripcion, creado_en) VALUES (?, ?, ?, NULL, ?)',
              [userId, amount, reference, createdAt],
            ),
          ),
        );
        for (const [shape, entry] of Object.entries(tx)) {
          ratios[`tx_vs_insert_${shape}`] = entry.ratio.median;
        }
      }
      if (settings.wants('shared')) {
        const window = 300_000;
        const entry = await report.compare(
          'mysql_shared_ping_vs_insert_c32',
          'mysql (shared nonce record): signed system.ping vs raw nonce INSERT, c=32',
          {
            name: 'system.ping',
            run: () =>
              tcpLoad(
                settings,
                service,
                8,
                4,
                pingRequest,
                okReply,
                PRESIGN.ping,
              ),
          },
          {
            name: 'raw INSERT',
            run: () =>
              load(settings, {
                workers: 32,
                op: async () => {
                  await pool.query(
                    'INSERT INTO nonces_usados (kid, nonce, expira_en) VALUES (?, ?, ?)',
                    ['raw', nextNonce(), Date.now() + window],
                  );
                  return null;
                },
              }),
          },
        );
        ratios.shared_ping_vs_insert_c32 = entry.ratio.median;
      }
      if (settings.wants('login'))
        await loginScenarios(settings, report, service);
      if (settings.wants('probe')) await probe(service);
    } finally {
      await service.stop();
    }
    if (settings.wants('trips')) {
      const counts = await roundTrips(settings, server.database);
      report.results.mysqlStatementsPerRequest = counts;
      process.stderr.write(
        `statements per request: ${JSON.stringify(counts)}\n`,
      );
    }
  } finally {
    await pool.end();
    rmSync(dataDir, { recursive: true, force: true });
  }
}
