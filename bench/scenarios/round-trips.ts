import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestDatabase } from '../../test/support/test-database';
import { startService } from '../processes';
import type { StatementCounts } from '../report';
import {
  connect,
  send,
  okReply,
  pingRequest,
  registerAndLogin,
  runId,
  signed,
  txRequest,
  type Sent,
} from '../requests';
import type { Settings } from '../settings';

type Counts = Record<string, number>;

function perRequest(before: Counts, after: Counts, requests: number): Counts {
  const out: Counts = { total: 0 };
  for (const verb of new Set([...Object.keys(before), ...Object.keys(after)])) {
    const n = ((after[verb] ?? 0) - (before[verb] ?? 0)) / requests;
    if (n > 0) {
      out[verb] = n;
      out.total += n;
    }
  }
  return out;
}

/**
 * Statements the service sends to MySQL per request, counted inside the service process
 * (bench/count-queries.mts), requests sent one at a time.
 */
export async function roundTrips(
  settings: Settings,
  database: TestDatabase,
): Promise<StatementCounts> {
  const dataDir = mkdtempSync(join(tmpdir(), 'pai-bench-count-'));
  try {
    const service = await startService(settings, 'pai-count', {
      database,
      dataDir,
      preload: [join(__dirname, '..', 'count-queries.mts')],
    });
    const { child } = service.process;
    try {
      const read = () =>
        new Promise<Counts>((resolve) => {
          child.once('message', (message: { counts: Counts }) =>
            resolve(message.counts),
          );
          child.send('counts');
        });
      const username = `bench-count-${runId.slice(0, 6)}`;
      const user = await registerAndLogin(service.port, username);
      const client = await connect(service.port);
      try {
        const measure = async (requests: number, makeRequest: () => Sent) => {
          const before = await read();
          for (let i = 0; i < requests; i += 1) {
            const sent = makeRequest();
            const failure = okReply(await send(client, sent), sent);
            if (failure) throw new Error(failure);
          }
          return perRequest(before, await read(), requests);
        };
        return {
          'system.ping': await measure(50, pingRequest),
          'transactions.create': await measure(50, () =>
            txRequest(user.token, '1.00'),
          ),
          'auth.login': await measure(10, () =>
            signed('auth.login', { username, password: user.password }),
          ),
        };
      } finally {
        client.close();
      }
    } finally {
      await service.stop();
    }
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
}
