import { PaiClientError } from '@pai/client/client/pai-client.error';
import { failure } from '../support/failure';
import { formatCents } from '../../src/transactions/amount';
import { Transaction } from '../../src/transactions/transaction.entity';
import type { PaiClient } from '@pai/client/client/pai-client';
import { e2eTransport } from '../support/test-app';
import { databaseKind } from '../support/test-database';
import { useTestApp } from '../support/use-test-app';
import { Database } from '../../src/database/database.service';
import { TEST_KEYS } from '../support/test-keys';
import { signEnvelope } from '../support/raw-client';

describe(`transactions over ${e2eTransport} (${databaseKind})`, () => {
  const service = useTestApp();
  let client: PaiClient;
  let token: string;
  let userId: string;

  async function signUp(
    username: string,
  ): Promise<{ token: string; userId: string }> {
    await client.send('auth.register', { username, password: 'correct horse' });
    return client.send('auth.login', { username, password: 'correct horse' });
  }

  async function rowCount(): Promise<number> {
    const [row] = await service().dataSource.query(
      'SELECT COUNT(*) AS n FROM transacciones',
    );
    return Number(row.n);
  }

  beforeEach(async () => {
    client = service().client();
    ({ token, userId } = await signUp('alice'));
  });

  it('should record a transaction and return it with exact two-decimal amounts', async () => {
    const reply = await client.send('transactions.create', {
      token,
      amount: '12.5',
      reference: 'order:42',
      description: 'café €😀',
    });
    expect(reply.created).toBe(true);
    expect(reply.transaction).toEqual({
      id: expect.stringMatching(/^[1-9][0-9]*$/),
      userId,
      amount: '12.50',
      reference: 'order:42',
      description: 'café €😀',
      createdAt: expect.any(String),
    });
    const [listed] = (await client.send('transactions.list', { token })).items;
    expect(listed).toEqual(reply.transaction);
  });

  it('should sum amounts exactly, with no binary floating point anywhere', async () => {
    for (const amount of ['0.10', '0.20', '9999999999999.99', '0.01']) {
      await client.send('transactions.create', { token, amount });
    }
    const me = await client.send('users.me', { token });
    expect(me.transactionCount).toBe(4);
    // 0.1 + 0.2 + 9999999999999.99 + 0.01 in doubles is 10000000000000.3 at best.
    expect(me.total).toBe('10000000000000.30');
    const amounts = (
      await client.send('transactions.list', { token })
    ).items.map((item) => item.amount);
    expect(amounts).toEqual(['0.01', '9999999999999.99', '0.20', '0.10']);
  });

  it('should total exactly past 2^63 cents, the range of a 64-bit integer', async () => {
    // 10 000 of the largest amount: 9.99e18 cents, beyond 2^63 - 1 = 9.22e18. Inserted directly,
    // in batches, for speed; one amount with cents so the cents are checked too.
    const rows = 10_000;
    const largest = '9999999999999.99';
    const createdAt = new Date();
    for (let first = 0; first < rows; first += 500) {
      const batch = Array.from({ length: 500 }, (_, i) => ({
        userId,
        amount: first + i === 0 ? '0.07' : largest,
        reference: null,
        description: null,
        createdAt,
      }));
      await service()
        .dataSource.createQueryBuilder()
        .insert()
        .into(Transaction)
        .values(batch)
        .updateEntity(false)
        .execute();
    }
    const expected = 999_999_999_999_999n * BigInt(rows - 1) + 7n;
    expect(expected).toBeGreaterThan(2n ** 63n);

    const me = await client.send('users.me', { token });

    expect(me.transactionCount).toBe(rows);
    expect(me.total).toBe(formatCents(expected));
    expect(me.total).toBe('99989999999999900.08');
  });

  it('should store the amount column as an exact decimal, not a float', async () => {
    await client.send('transactions.create', { token, amount: '150.25' });
    const [row] = await service().dataSource.query(
      'SELECT cantidad FROM transacciones',
    );
    expect(row.cantidad).toBe('150.25');
  });

  it('should refuse a JSON number, zero, and malformed amounts with BAD_REQUEST and store nothing', async () => {
    for (const amount of [
      12.5,
      '0',
      '0.00',
      '-5',
      '1.999',
      '1e3',
      '12345678901234',
      '',
    ] as never[]) {
      const error = await failure(
        client.send('transactions.create', { token, amount }),
      );
      expect(error.code).toBe('BAD_REQUEST');
      expect(error.details.fields).toEqual([
        expect.objectContaining({ field: 'payload.amount' }),
      ]);
    }
    expect(await rowCount()).toBe(0);
  });

  it('should refuse unknown fields, long descriptions and bad references', async () => {
    const cases = [
      { token, amount: '1.00', currency: 'EUR' },
      { token, amount: '1.00', description: 'x'.repeat(141) },
      { token, amount: '1.00', reference: 'has space' },
      { token, amount: '1.00', reference: null },
    ];
    for (const payload of cases) {
      expect(
        (await failure(client.send('transactions.create', payload as never)))
          .code,
      ).toBe('BAD_REQUEST');
    }
    await expect(
      client.send('transactions.create', {
        token,
        amount: '1.00',
        description: '😀'.repeat(140),
      }),
    ).resolves.toHaveProperty('created', true);
  });

  it('should return the first transaction again for a repeated reference and add no row', async () => {
    const first = await client.send('transactions.create', {
      token,
      amount: '7',
      reference: 'pay-1',
    });
    const again = await client.send('transactions.create', {
      token,
      amount: '7.00',
      reference: 'pay-1',
    });
    expect(again).toEqual({ transaction: first.transaction, created: false });
    expect(await rowCount()).toBe(1);
  });

  it('should refuse a reused reference with another amount or description', async () => {
    await client.send('transactions.create', {
      token,
      amount: '7',
      reference: 'pay-1',
      description: 'rent',
    });
    const otherAmount = client.send('transactions.create', {
      token,
      amount: '8',
      reference: 'pay-1',
      description: 'rent',
    });
    expect((await failure(otherAmount)).code).toBe('IDEMPOTENCY_CONFLICT');
    const otherText = client.send('transactions.create', {
      token,
      amount: '7',
      reference: 'pay-1',
    });
    expect((await failure(otherText)).code).toBe('IDEMPOTENCY_CONFLICT');
    expect(await rowCount()).toBe(1);
  });

  it('should create one row for many concurrent requests with one reference', async () => {
    const replies = await Promise.all(
      Array.from({ length: 10 }, () =>
        client.send('transactions.create', {
          token,
          amount: '3.00',
          reference: 'once',
        }),
      ),
    );
    expect(replies.filter((reply) => reply.created)).toHaveLength(1);
    expect(new Set(replies.map((reply) => reply.transaction.id)).size).toBe(1);
    expect(await rowCount()).toBe(1);
  });

  it('should write requests that arrive together in fewer commits, each with its own outcome', async () => {
    const database = service().app.get(Database);
    const writes = jest.spyOn(
      database,
      database.dialect === 'mysql' ? 'script' : 'sqlite',
    );
    const bob = await signUp('bob');
    await client.send('auth.logout', { token: bob.token });
    const outcome = (payload: { amount: string; reference?: string }) =>
      client.send('transactions.create', { token, ...payload }).then(
        (reply) =>
          reply.created ? 'created' : `again ${reply.transaction.id}`,
        (error: PaiClientError) => error.code,
      );
    // A copy of one signed create, sent with the others: one of the two is REPLAY.
    const raw = await service().raw();
    const copied = signEnvelope(
      'transactions.create',
      { token, amount: '7.00', reference: 'copied' },
      TEST_KEYS.default,
    );
    const sentTwice = () =>
      raw
        .request('transactions.create', copied)
        .then((reply) => (reply.ok ? 'created' : reply.error?.code));

    const [plain, same, conflicting, revoked, copies] = await Promise.all([
      Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          outcome({ amount: `${i + 1}.00` }),
        ),
      ),
      Promise.all([
        outcome({ amount: '5.00', reference: 'twice' }),
        outcome({ amount: '5.00', reference: 'twice' }),
      ]),
      outcome({ amount: '6.00', reference: 'twice' }),
      client
        .send('transactions.create', { token: bob.token, amount: '1.00' })
        .then(
          () => 'created',
          (error: PaiClientError) => error.code,
        ),
      Promise.all([sentTwice(), sentTwice()]),
    ]);

    expect(plain).toEqual(Array(20).fill('created'));
    const firstOfTwice = (
      await client.send('transactions.list', { token, limit: 100 })
    ).items.find((item) => item.reference === 'twice');
    // Whichever of the three came first wrote the row; the same request again is answered with
    // it, a different one is a conflict.
    const twice = [...same, conflicting];
    expect(twice.filter((o) => o === 'created')).toHaveLength(1);
    if (firstOfTwice?.amount === '5.00') {
      expect(same.sort()).toEqual(
        [`again ${firstOfTwice.id}`, 'created'].sort(),
      );
      expect(conflicting).toBe('IDEMPOTENCY_CONFLICT');
    } else {
      expect(same).toEqual(['IDEMPOTENCY_CONFLICT', 'IDEMPOTENCY_CONFLICT']);
    }
    expect(revoked).toBe('UNAUTHENTICATED');
    expect(copies.sort()).toEqual(['REPLAY', 'created']);
    // 20 plain rows, one for "twice", one for the copied create; the requests shared commits.
    expect(await rowCount()).toBe(22);
    expect(writes.mock.calls.length).toBeLessThanOrEqual(10);
  });

  it('should keep references per user', async () => {
    const bob = await signUp('bob');
    await client.send('transactions.create', {
      token,
      amount: '1',
      reference: 'shared',
    });
    const reply = await client.send('transactions.create', {
      token: bob.token,
      amount: '2',
      reference: 'shared',
    });
    expect(reply.created).toBe(true);
  });

  it('should lose none of many concurrent writes, even when some of them fail', async () => {
    const calls = Array.from({ length: 120 }, (_, i) => {
      // Thirteen writes share one reference with different amounts: whichever
      // commits first wins and the other twelve must fail alone. (Equal
      // payloads would be idempotent replays, and which write comes first is
      // up to the scheduler, so every amount is distinct.)
      const payload = {
        token,
        amount: `${i + 1}.01`,
        ...(i % 10 === 9 || i === 0 ? { reference: 'fixed' } : {}),
      };
      return client.send('transactions.create', payload).then(
        (reply) => ({ ok: true as const, reply }),
        (error: PaiClientError) => ({ ok: false as const, code: error.code }),
      );
    });
    const results = await Promise.all(calls);
    const acknowledged = results.filter((result) => result.ok);
    expect(
      results
        .filter((result) => !result.ok)
        .map((result) => (result.ok ? '' : result.code)),
    ).toEqual(Array(12).fill('IDEMPOTENCY_CONFLICT'));
    expect(acknowledged).toHaveLength(108);
    const stored = await service().dataSource.query(
      'SELECT id FROM transacciones',
    );
    expect(stored.map((row: { id: unknown }) => String(row.id)).sort()).toEqual(
      acknowledged
        .map((result) => (result.ok ? result.reply.transaction.id : ''))
        .sort(),
    );
  });

  it('should page newest first with limit and before', async () => {
    for (let i = 1; i <= 5; i += 1) {
      await client.send('transactions.create', { token, amount: `${i}.00` });
    }
    const first = await client.send('transactions.list', { token, limit: 2 });
    expect(first.items.map((item) => item.amount)).toEqual(['5.00', '4.00']);
    expect(first.nextBefore).toBe(first.items[1].id);
    const second = await client.send('transactions.list', {
      token,
      limit: 2,
      before: first.nextBefore!,
    });
    expect(second.items.map((item) => item.amount)).toEqual(['3.00', '2.00']);
    const last = await client.send('transactions.list', {
      token,
      limit: 2,
      before: second.nextBefore!,
    });
    expect(last.items.map((item) => item.amount)).toEqual(['1.00']);
    expect(last.nextBefore).toBeNull();
    const all = await client.send('transactions.list', { token });
    expect(all.items).toHaveLength(5);
    expect(all.nextBefore).toBeNull();
  });

  it('should refuse out-of-range page sizes and cursors', async () => {
    for (const page of [
      { limit: 0 },
      { limit: 101 },
      { limit: 2.5 },
      { limit: '5' },
      { before: 'abc' },
    ]) {
      expect(
        (
          await failure(
            client.send('transactions.list', { token, ...page } as never),
          )
        ).code,
      ).toBe('BAD_REQUEST');
    }
  });

  it('should show each user only their own transactions and totals', async () => {
    const bob = await signUp('bob');
    await client.send('transactions.create', { token, amount: '10.00' });
    await client.send('transactions.create', {
      token: bob.token,
      amount: '20.00',
    });
    const mine = await client.send('transactions.list', { token });
    expect(mine.items.map((item) => item.amount)).toEqual(['10.00']);
    const bobsMe = await client.send('users.me', { token: bob.token });
    expect(bobsMe).toEqual({
      userId: bob.userId,
      username: 'bob',
      createdAt: expect.any(String),
      transactionCount: 1,
      total: '20.00',
    });
  });

  it('should report zero for a user without transactions', async () => {
    const me = await client.send('users.me', { token });
    expect(me.transactionCount).toBe(0);
    expect(me.total).toBe('0.00');
  });

  it('should refuse transactions without a live session', async () => {
    await client.send('auth.logout', { token });
    expect(
      (
        await failure(
          client.send('transactions.create', { token, amount: '1.00' }),
        )
      ).code,
    ).toBe('UNAUTHENTICATED');
    expect(
      (await failure(client.send('transactions.list', { token }))).code,
    ).toBe('UNAUTHENTICATED');
    expect(await rowCount()).toBe(0);
  });

  it('should keep every acknowledged transaction across a restart', async () => {
    const created = await client.send('transactions.create', {
      token,
      amount: '42.00',
      reference: 'keep',
    });
    client = (await service.restart()).client();
    const me = await client.send('users.me', { token });
    expect(me.total).toBe('42.00');
    const again = await client.send('transactions.create', {
      token,
      amount: '42.00',
      reference: 'keep',
    });
    expect(again).toEqual({ transaction: created.transaction, created: false });
  });
});
