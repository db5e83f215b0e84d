import Database from 'better-sqlite3';
import { join } from 'node:path';
import { SQLITE_FILE_NAME } from '../../src/config/database-config';
import { sqliteDatabase } from '../databases';
import { tcpLoad } from '../load';
import { startEcho, startService, type Server } from '../processes';
import type { Entry, Report } from '../report';
import { echoReply, okReply, pingRequest, PRESIGN } from '../requests';
import type { Settings } from '../settings';
import { txVsInsert } from './tx-vs-insert';

/** Connections x requests in flight on each. */
const SHAPES = [
  [1, 1],
  [1, 64],
  [8, 16],
] as const;

async function pingVsEcho(
  settings: Settings,
  report: Report,
  tag: string,
  service: Server,
  echo: Server,
): Promise<Record<string, Entry>> {
  const entries: Record<string, Entry> = {};
  for (const [connections, inflight] of SHAPES) {
    const shape = `${connections}x${inflight}`;
    if (settings.shape && settings.shape !== shape) continue;
    entries[shape] = await report.compare(
      `${tag}_ping_vs_echo_${shape}`,
      `${tag}: signed system.ping vs bare Nest echo, ${shape}`,
      {
        name: 'system.ping',
        run: () =>
          tcpLoad(
            settings,
            service,
            connections,
            inflight,
            pingRequest,
            okReply,
            PRESIGN.ping,
          ),
      },
      {
        name: 'Nest TCP echo',
        run: () =>
          tcpLoad(
            settings,
            echo,
            connections,
            inflight,
            pingRequest,
            echoReply,
            PRESIGN.ping,
          ),
      },
    );
  }
  return entries;
}

/** The single instance on its embedded database (in-memory nonce record): ping and tx. */
export async function sqliteScenarios(
  settings: Settings,
  report: Report,
): Promise<void> {
  const database = await sqliteDatabase();
  const { dataDir } = database;
  const servers: Server[] = [];
  try {
    const service = await startService(settings, 'pai-sqlite', {
      database,
      dataDir,
    });
    servers.push(service);
    const echo = await startEcho(settings);
    servers.push(echo);
    if (settings.wants('ping')) {
      const ping = await pingVsEcho(settings, report, 'sqlite', service, echo);
      for (const [shape, entry] of Object.entries(ping)) {
        report.results.ratios[`ping_vs_echo_${shape}`] = entry.ratio.median;
      }
    }
    if (settings.wants('tx')) {
      // The baseline writes to its own copy of the database (taken once the bench user exists),
      // with the service's settings, so the two never wait on one file lock.
      let raw: Database.Database | undefined;
      try {
        const tx = await txVsInsert(
          settings,
          report,
          'sqlite',
          service,
          async () => {
            const source = new Database(join(dataDir, SQLITE_FILE_NAME), {
              readonly: true,
            });
            await source.backup(join(dataDir, 'raw.sqlite'));
            source.close();
            const copy = new Database(join(dataDir, 'raw.sqlite'));
            raw = copy;
            copy.pragma('journal_mode = WAL');
            copy.pragma('synchronous = FULL');
            copy.pragma('foreign_keys = ON');
            const insert = copy.prepare(
              'INSERT INTO transacciones (usuario_id, cantidad, referencia, descripcion, creado_en) VALUES (?, ?, ?, NULL, ?)',
            );
            // better-sqlite3 is synchronous: yield after each statement so timers and the other
            // workers run (an event loop serving requests would do no less).
            return async (userId, amount, reference, createdAt) => {
              insert.run(userId, amount, reference, createdAt.toISOString());
              await new Promise((resolve) => setImmediate(resolve));
            };
          },
        );
        for (const [shape, entry] of Object.entries(tx)) {
          report.results.ratios[`sqlite_tx_vs_insert_${shape}`] =
            entry.ratio.median;
        }
      } finally {
        raw?.close();
      }
    }
  } finally {
    for (const server of servers) await server.stop();
    await database.drop();
  }
}
