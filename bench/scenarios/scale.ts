import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startHaproxy, type Haproxy } from '../../test/support/haproxy';
import { freePort } from '../../test/support/ports';
import type { MysqlServer } from '../databases';
import { tcpLoad, type Target } from '../load';
import { startService, track, type Server } from '../processes';
import type { Report } from '../report';
import {
  okReply,
  pingRequest,
  registerAndLogin,
  runId,
  signed,
  txRequest,
  type Sent,
  type User,
  PRESIGN,
} from '../requests';
import { MYSQL_CONNECTIONS, type Settings } from '../settings';

/**
 * 1 versus 2 instances on one MySQL database, each behind HAProxy on deploy/haproxy.cfg (the file
 * the deployment and the scale-out tests run; it wants two servers, so "1 instance" lists the same
 * one twice), same load client. On a 2-core machine the load client, HAProxy, MariaDB and the
 * instances share the cores, so this shows what a second instance adds here, not on real hosts.
 */
export async function scaleScenarios(
  settings: Settings,
  report: Report,
  server: Extract<MysqlServer, { available: true }>,
): Promise<void> {
  const { ratios } = report.results;
  const dataDirs = [0, 1].map(() =>
    mkdtempSync(join(tmpdir(), 'pai-bench-scale-')),
  );
  const instances: { server: Server; httpPort: number }[] = [];
  const proxies: Haproxy[] = [];
  try {
    for (const [i, dataDir] of dataDirs.entries()) {
      const httpPort = await freePort();
      const instance = await startService(settings, `pai-${i + 1}`, {
        database: server.database,
        dataDir,
        // Half the pool each: the two instances together hold what one holds alone. The HTTP
        // side port is HAProxy's health check.
        extraEnv: {
          PAI_NONCE_STORE: 'database',
          PAI_DB_POOL_SIZE: String(MYSQL_CONNECTIONS / 2),
          PAI_HTTP_PORT: String(httpPort),
        },
      });
      instances.push({ server: instance, httpPort });
    }
    const backend = ({ server, httpPort }: (typeof instances)[number]) => ({
      addr: `127.0.0.1:${server.port}`,
      checkPort: httpPort,
    });
    const haproxy = async (listed: (typeof instances)[number][]) => {
      // The load client is one address with up to 32 connections.
      const proxy = await startHaproxy(listed.map(backend), {
        PAI_HAPROXY_MAX_CONN_PER_SOURCE: '1000',
      });
      track(proxy.child);
      proxies.push(proxy);
      return proxy;
    };
    const [first, second] = instances;
    const one = await haproxy([first, first]);
    const two = await haproxy([first, second]);
    // The server's CPU is the instances', not HAProxy's.
    const front1: Target = { port: one.port, pids: first.server.pids };
    const front2: Target = {
      port: two.port,
      pids: [...first.server.pids, ...second.server.pids],
    };

    const user = await registerAndLogin(
      two.port,
      `bench-scale-${randomBytes(3).toString('hex')}`,
    );
    const workloads: [string, string, () => Sent][] = [
      ['ping', 'signed system.ping, 8x4', pingRequest],
      ['tx', 'transactions.create, 8x4', () => txRequest(user.token)],
    ];
    for (const [key, label, make] of workloads) {
      const entry = await report.compare(
        `mysql_scale_${key}_2_vs_1`,
        `mysql behind HAProxy: ${label}, 2 instances vs 1`,
        {
          name: '2 instances',
          run: () => tcpLoad(settings, front2, 8, 4, make, okReply),
        },
        {
          name: '1 instance',
          run: () => tcpLoad(settings, front1, 8, 4, make, okReply),
        },
      );
      ratios[`scale_${key}_2_vs_1`] = entry.ratio.median;
    }
    // bcrypt is CPU bound: the one workload where a second process can add cores' worth of work.
    const users: User[] = [];
    for (let i = 0; i < 8; i += 1) {
      users.push(
        await registerAndLogin(
          two.port,
          `bench-scale-login-${runId.slice(0, 6)}-${i}`,
        ),
      );
    }
    let next = 0;
    const login = () => {
      const { username, password } = users[next++ % users.length];
      return signed('auth.login', { username, password });
    };
    const loginEntry = await report.compare(
      'mysql_scale_login_2_vs_1',
      'mysql behind HAProxy: auth.login, 8 in flight, 2 instances vs 1',
      {
        name: '2 instances',
        run: () => tcpLoad(settings, front2, 8, 1, login, okReply),
      },
      {
        name: '1 instance',
        run: () => tcpLoad(settings, front1, 8, 1, login, okReply),
      },
    );
    ratios.scale_login_2_vs_1 = loginEntry.ratio.median;
    const direct = await report.compare(
      'mysql_haproxy_hop_ping',
      "mysql: signed system.ping 8x4 through HAProxy (1 instance) vs direct (lower than 1 is the hop's cost)",
      {
        name: 'via HAProxy',
        run: () =>
          tcpLoad(settings, front1, 8, 4, pingRequest, okReply, PRESIGN.ping),
      },
      {
        name: 'direct',
        run: () =>
          tcpLoad(
            settings,
            first.server,
            8,
            4,
            pingRequest,
            okReply,
            PRESIGN.ping,
          ),
      },
    );
    ratios.haproxy_hop_ping = direct.ratio.median;
  } finally {
    for (const proxy of proxies) await proxy.stop();
    for (const { server: instance } of instances) await instance.stop();
    dataDirs.forEach((dir) => rmSync(dir, { recursive: true, force: true }));
  }
}
