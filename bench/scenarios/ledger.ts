import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestDatabase } from '../../test/support/test-database';
import { mysqlServer, sqliteDatabase } from '../databases';
import { tcpLoad } from '../load';
import { startService, type Server } from '../processes';
import type { Report } from '../report';
import { okReply, PRESIGN, registerAndLogin, txRequest } from '../requests';
import type { Settings } from '../settings';

/**
 * What sealing costs the write path (docs/ledger.md): transactions.create at c=32 on an instance
 * that seals against one that does not (PAI_LEDGER_SEAL_INTERVAL_MS=0), each on a database of its
 * own, in alternating rounds. A one-second settle window and interval keep the sealer working
 * inside each round, as it does in steady state.
 */
async function withAndWithout(
  settings: Settings,
  report: Report,
  tag: string,
  databases: [TestDatabase, TestDatabase],
): Promise<void> {
  const servers: Server[] = [];
  const dirs: string[] = [];
  try {
    const start = async (
      name: string,
      database: TestDatabase,
      every: string,
    ) => {
      const dataDir = mkdtempSync(join(tmpdir(), 'pai-bench-ledger-'));
      dirs.push(dataDir);
      const server = await startService(settings, name, {
        database,
        dataDir: database.config.type === 'sqlite' ? database.dataDir : dataDir,
        extraEnv: {
          PAI_LEDGER_SETTLE_MS: '1000',
          PAI_LEDGER_SEAL_INTERVAL_MS: every,
        },
      });
      servers.push(server);
      return server;
    };
    const sealing = await start(`pai-${tag}-sealing`, databases[0], '1000');
    const plain = await start(`pai-${tag}-not-sealing`, databases[1], '0');
    const name = `bench-ledger-${randomBytes(3).toString('hex')}`;
    const [sealingUser, plainUser] = await Promise.all([
      registerAndLogin(sealing.port, name),
      registerAndLogin(plain.port, name),
    ]);
    const entry = await report.compare(
      `${tag}_create_sealing_vs_not`,
      `${tag}: transactions.create with the sealer running vs without, c=32`,
      {
        name: 'sealing',
        run: () =>
          tcpLoad(
            settings,
            sealing,
            8,
            4,
            () => txRequest(sealingUser.token),
            okReply,
            PRESIGN.create,
          ),
      },
      {
        name: 'not sealing',
        run: () =>
          tcpLoad(
            settings,
            plain,
            8,
            4,
            () => txRequest(plainUser.token),
            okReply,
            PRESIGN.create,
          ),
      },
    );
    report.results.ratios[`${tag}_create_sealing_vs_not`] = entry.ratio.median;
  } finally {
    for (const server of servers) await server.stop();
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  }
}

export async function ledgerScenarios(
  settings: Settings,
  report: Report,
): Promise<void> {
  const sqlite: [TestDatabase, TestDatabase] = [
    await sqliteDatabase(),
    await sqliteDatabase(),
  ];
  try {
    await withAndWithout(settings, report, 'sqlite', sqlite);
  } finally {
    await Promise.all(sqlite.map((database) => database.drop()));
  }
  const servers = [await mysqlServer(), await mysqlServer()];
  try {
    const [a, b] = servers;
    if (!a.available || !b.available) {
      report.skip('ledger_mysql', a.available ? 'MySQL unavailable' : a.reason);
      return;
    }
    await withAndWithout(settings, report, 'mysql', [a.database, b.database]);
  } finally {
    for (const server of servers) if (server.available) await server.drop();
  }
}
