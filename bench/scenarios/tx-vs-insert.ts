import { randomBytes } from 'node:crypto';
import { load, tcpLoad } from '../load';
import type { Server } from '../processes';
import type { Entry, Report } from '../report';
import {
  okReply,
  registerAndLogin,
  txRequest,
  nextReference,
  PRESIGN,
} from '../requests';
import type { Settings } from '../settings';

/** Writes one transaction row as the service would, without the service. */
export type InsertRow = (
  userId: string,
  amount: string,
  reference: string,
  createdAt: Date,
) => Promise<unknown>;

/**
 * transactions.create against a raw single-row INSERT into the same table, at c=1 and c=32.
 * `prepareBaseline` runs once the bench user exists.
 */
export async function txVsInsert(
  settings: Settings,
  report: Report,
  tag: string,
  service: Server,
  prepareBaseline: () => Promise<InsertRow>,
): Promise<Record<string, Entry>> {
  const user = await registerAndLogin(
    service.port,
    `bench-tx-${randomBytes(3).toString('hex')}`,
  );
  const insertRow = await prepareBaseline();
  const out: Record<string, Entry> = {};
  for (const concurrency of [1, 32]) {
    if (settings.shape && settings.shape !== `c${concurrency}`) continue;
    const [connections, inflight] = concurrency === 1 ? [1, 1] : [8, 4];
    out[`c${concurrency}`] = await report.compare(
      `${tag}_tx_vs_insert_c${concurrency}`,
      `${tag}: transactions.create vs raw single-row INSERT, c=${concurrency}`,
      {
        name: 'transactions.create',
        run: () =>
          tcpLoad(
            settings,
            service,
            connections,
            inflight,
            () => txRequest(user.token),
            okReply,
            PRESIGN.create,
          ),
      },
      {
        name: 'raw INSERT',
        run: () =>
          load(settings, {
            workers: concurrency,
            op: async () => {
              await insertRow(
                user.userId,
                '12.50',
                nextReference(),
                new Date(),
              );
              return null;
            },
          }),
      },
    );
  }
  return out;
}
