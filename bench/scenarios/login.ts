import bcrypt from 'bcrypt';
import { createHmac } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { load, tcpLoad } from '../load';
import type { Server } from '../processes';
import { median, spread, type Report } from '../report';
import {
  PASSWORD,
  PEPPER,
  connect,
  send,
  okReply,
  pingRequest,
  registerAndLogin,
  runId,
  signed,
  type User,
} from '../requests';
import { BCRYPT_COST, type Settings } from '../settings';

/** One bcrypt compare at the service's cost, as the service runs it (prehashed password). */
function bcryptCompareMs(): number {
  const input = createHmac('sha384', PEPPER).update(PASSWORD).digest('base64');
  const hash = bcrypt.hashSync(input, BCRYPT_COST);
  const times: number[] = [];
  for (let i = 0; i < 5; i += 1) {
    const began = performance.now();
    bcrypt.compareSync(input, hash);
    times.push(performance.now() - began);
  }
  return median(times);
}

/**
 * auth.login against the bound bcrypt sets (threads x 1000 / one compare's ms), and the p99 of a
 * signed ping during a login storm against idle.
 */
export async function loginScenarios(
  settings: Settings,
  report: Report,
  service: Server,
): Promise<void> {
  // One user per worker: logins of one user would trip its throttle (5 failures counted before
  // the password check), and a storm of one user is not what is measured.
  const workers = settings.threadpool * 3;
  const users: User[] = [];
  for (let i = 0; i < workers; i += 1) {
    users.push(
      await registerAndLogin(
        service.port,
        `bench-login-${runId.slice(0, 6)}-${i}`,
      ),
    );
  }
  const loginStorm = async (durationMs: number) => {
    const client = await connect(service.port);
    try {
      return await load(settings, {
        workers,
        durationMs,
        op: async (worker) => {
          const { username, password } = users[worker];
          const sent = signed('auth.login', { username, password });
          return okReply(await send(client, sent), sent);
        },
      });
    } finally {
      client.close();
    }
  };

  const compareMs: number[] = [];
  const login = await report.compare(
    'mysql_login_vs_bcrypt_bound',
    `mysql: auth.login throughput vs bcrypt bound (${settings.threadpool} libuv threads x 1000 / one compare ms, cost ${BCRYPT_COST})`,
    { name: 'auth.login', run: () => loginStorm(settings.durationMs) },
    {
      name: 'bcrypt bound',
      run: () => {
        const ms = bcryptCompareMs();
        compareMs.push(ms);
        return Promise.resolve({
          throughput: (settings.threadpool * 1000) / ms,
          p50: ms,
          p99: ms,
          max: ms,
          errors: 0,
          firstError: null,
          requests: 0,
        });
      },
    },
  );
  login.compareMs = spread(compareMs);
  report.results.ratios.login_vs_bcrypt_bound = login.ratio.median;

  const ping = () => tcpLoad(settings, service, 1, 1, pingRequest, okReply);
  const storm = await report.compare(
    'mysql_ping_p99_storm_vs_idle',
    'mysql: system.ping p99 (1x1) during a login storm vs idle (lower is better)',
    {
      name: 'ping during login storm',
      run: async () => {
        const [result] = await Promise.all([
          ping(),
          loginStorm(settings.durationMs),
        ]);
        return result;
      },
    },
    { name: 'ping idle', run: ping },
    { metric: 'p99' },
  );
  report.results.ratios.ping_p99_storm_vs_idle = storm.ratio.median;
}
