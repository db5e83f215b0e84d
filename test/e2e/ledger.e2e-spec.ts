/**
 * The ledger as the service keeps it: rows sealed by the instance holding the lease, rows from
 * before the ledger sealed at the first start, receipts and digests over the protocol, checked
 * by the client-side verification against a digest.
 */
import type { DataSource } from 'typeorm';
import type { PaiClient } from '@pai/client/client/pai-client';
import { PaiClientError } from '@pai/client/client/pai-client.error';
import { Sealer } from '../../src/ledger/sealer';
import { receiptProblem } from '@pai/client/protocol/receipt';
import { signUp } from '../support/accounts';
import { countOf, verify, waitUntilSealed } from '../support/ledger';
import { databaseKind } from '../support/test-database';
import { useTestDatabase } from '../support/use-test-app';

jest.setTimeout(60_000);

async function pay(client: PaiClient, token: string, count: number) {
  const ids: string[] = [];
  for (let i = 0; i < count; i += 1) {
    const { transaction } = await client.send('transactions.create', {
      token,
      amount: `${i + 1}.25`,
      description: `payment ${i}`,
    });
    ids.push(transaction.id);
  }
  return ids;
}

async function leaseHolder(dataSource: DataSource): Promise<string> {
  const [row] = await dataSource.query<{ holder: string }[]>(
    "SELECT holder FROM ledger_lease WHERE name = 'sealer'",
  );
  return row.holder;
}

async function failure(promise: Promise<unknown>): Promise<PaiClientError> {
  try {
    await promise;
  } catch (error) {
    return error as PaiClientError;
  }
  throw new Error('expected a failure');
}

describe(`the ledger (${databaseKind})`, () => {
  const database = useTestDatabase();

  it('should seal what is committed, and give a receipt that verifies against the digest', async () => {
    const app = await database.start();
    const client = app.client();
    const token = await signUp(client, 'alice');
    const ids = await pay(client, token, 7);
    await waitUntilSealed(app.dataSource);
    expect((await verify(app.dataSource)).clean).toBe(true);

    const digest = await client.send('ledger.digest', {});
    expect(digest).toEqual({
      block: expect.any(Number),
      hash: expect.stringMatching(/^[0-9a-f]{64}$/),
      sealedAt: expect.any(String),
    });
    for (const id of [ids[0], ids[6]]) {
      const receipt = await client.send('transactions.receipt', {
        token,
        id,
        digestBlock: digest.block,
      });
      expect(receipt.transaction.id).toBe(id);
      expect(receipt.headers).toHaveLength(digest.block - receipt.block.number);
      expect(receiptProblem(receipt, digest)).toBeUndefined();
      // The verification is what protects the client: an altered amount fails it.
      expect(
        receiptProblem(
          {
            ...receipt,
            transaction: { ...receipt.transaction, amount: '9999.00' },
          },
          digest,
        ),
      ).toBeDefined();
    }
  });

  it("should answer NOT_FOUND for another user's row and NOT_SEALED before sealing", async () => {
    const app = await database.start({
      ledger: { settleMs: 3_600_000, sealIntervalMs: 50 },
    });
    const client = app.client();
    const alice = await signUp(client, 'alice');
    const bob = await signUp(client, 'bob');
    const [id] = await pay(client, alice, 1);

    expect(
      (await failure(client.send('transactions.receipt', { token: bob, id })))
        .code,
    ).toBe('NOT_FOUND');
    expect(
      (
        await failure(
          client.send('transactions.receipt', { token: alice, id: '999999' }),
        )
      ).code,
    ).toBe('NOT_FOUND');
    expect(
      (await failure(client.send('transactions.receipt', { token: alice, id })))
        .code,
    ).toBe('NOT_SEALED');
    expect((await failure(client.send('ledger.digest', {}))).code).toBe(
      'NOT_SEALED',
    );
  });

  it('should seal the rows written before the ledger at the first start that seals', async () => {
    // An instance that does not seal stands for the service before the upgrade.
    const before = await database.start({
      ledger: { settleMs: 0, sealIntervalMs: 0 },
    });
    const client = before.client();
    const token = await signUp(client, 'early');
    await pay(client, token, 25);
    expect(await countOf(before.dataSource, 'ledger_entries')).toBe(0);
    await before.close();

    const after = await database.start();
    await waitUntilSealed(after.dataSource);
    expect(await verify(after.dataSource)).toMatchObject({
      clean: true,
      sealedRows: 25,
    });
  });

  it('should seal on one instance at a time, and hand over when it stops', async () => {
    const first = await database.start();
    const second = await database.start();
    const client = first.client();
    const token = await signUp(client, 'shared');
    await pay(client, token, 5);
    await waitUntilSealed(first.dataSource);
    const holder = await leaseHolder(first.dataSource);

    // Only the holder can renew a lease that is current: exactly one of the instances (two
    // apps, each of two instances over NATS).
    const instances = [first, second].flatMap((app) =>
      app.apps.map((instance) => ({ app, sealer: instance.get(Sealer) })),
    );
    const taken: boolean[] = [];
    for (const { sealer } of instances) taken.push(await sealer.takeLease());
    expect(taken.filter(Boolean)).toHaveLength(1);
    expect(await leaseHolder(first.dataSource)).toBe(holder);
    const holding = instances[taken.indexOf(true)].app;
    const waiting = holding === first ? second : first;

    await holding.close();
    await pay(waiting.client(), token, 3);
    await waitUntilSealed(waiting.dataSource);
    expect(await leaseHolder(waiting.dataSource)).not.toBe(holder);
    expect(await verify(waiting.dataSource)).toMatchObject({
      clean: true,
      sealedRows: 8,
    });
  });

  it('should not seal a row younger than the settle window, nor any after it', async () => {
    const app = await database.start({
      ledger: { settleMs: 0, sealIntervalMs: 0 },
    });
    const client = app.client();
    const token = await signUp(client, 'settle');
    const ids = await pay(client, token, 3);
    // A row dated later by its writer's clock (one committing late looks the same) stops the block before it.
    await app.dataSource.query(
      'UPDATE transacciones SET creado_en = ? WHERE id = ?',
      [
        new Date(Date.now() + 60_000)
          .toISOString()
          .replace('T', ' ')
          .replace('Z', ''),
        ids[1],
      ],
    );
    expect(await app.app.get(Sealer).sealPending()).toBe(1);
    expect(await countOf(app.dataSource, 'ledger_entries')).toBe(1);
    expect(await app.app.get(Sealer).sealPending()).toBe(0);
  });
});
