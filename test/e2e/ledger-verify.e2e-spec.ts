/**
 * `pai-server ledger verify` against a real database tampered with in each way the threat model
 * names (docs/ledger.md): each test seals a small ledger through the service, stops it, changes
 * the database with plain SQL as someone with write access would, and expects verify to name the
 * first row or block that no longer matches.
 */
import { runCommand, type CliRun } from '../support/cli-runner';
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { DataSource } from 'typeorm';
import type { LedgerDigest } from '@pai/client/protocol/receipt';
import { signUp } from '../support/accounts';
import { Sealer } from '../../src/ledger/sealer';
import { openDatabase, rewriteHistory, verify } from '../support/ledger';
import { TEST_LEDGER_KEY } from '../support/test-keys';
import { databaseKind } from '../support/test-database';
import { useTestDatabase } from '../support/use-test-app';

jest.setTimeout(60_000);

interface Ledger {
  dataSource: DataSource;
  /** Alice's four rows (with references), then Bob's four (without). */
  alice: string[];
  bob: string[];
  bobUserId: string;
  /** An id inside the sealed range that no row has. */
  gapId: string;
  /** Taken once Alice's rows were sealed, and at the end. */
  firstDigest: LedgerDigest;
  lastDigest: LedgerDigest;
}

function sqlTime(ms: number): string {
  return new Date(ms).toISOString().replace('T', ' ').replace('Z', '');
}

describe(`pai-server ledger verify (${databaseKind})`, () => {
  const database = useTestDatabase();
  const opened: DataSource[] = [];
  afterEach(async () => {
    await Promise.all(opened.splice(0).map((each) => each.destroy()));
  });

  /** Block 1: Alice's rows; block 2: the imported row and Bob's. Sealed on demand, so always so. */
  async function sealedLedger(): Promise<Ledger> {
    const app = await database.start({
      ledger: { settleMs: 0, sealIntervalMs: 0 },
    });
    const sealer = app.app.get(Sealer);
    const client = app.client();
    const aliceToken = await signUp(client, 'alice');
    const bobToken = await signUp(client, 'bob');
    const { userId: aliceUserId } = await client.send('users.me', {
      token: aliceToken,
    });
    const { userId: bobUserId } = await client.send('users.me', {
      token: bobToken,
    });
    const alice: string[] = [];
    for (let i = 0; i < 4; i += 1) {
      const { transaction } = await client.send('transactions.create', {
        token: aliceToken,
        amount: `${i + 1}.00`,
        reference: `rent-${i}`,
        description: `rent ${i}`,
      });
      alice.push(transaction.id);
    }
    expect(await sealer.sealPending()).toBe(4);
    const firstDigest = await client.send('ledger.digest', {});
    // A row written straight into the table one id further on leaves a gap inside what is sealed next.
    const gapId = String(Number(alice[3]) + 1);
    await app.dataSource.query(
      'INSERT INTO transacciones (id, usuario_id, cantidad, referencia, descripcion, creado_en) VALUES (?, ?, ?, NULL, ?, ?)',
      [
        String(Number(alice[3]) + 2),
        aliceUserId,
        '9.00',
        'imported',
        sqlTime(Date.now() - 60_000),
      ],
    );
    const bob: string[] = [];
    for (let i = 0; i < 4; i += 1) {
      const { transaction } = await client.send('transactions.create', {
        token: bobToken,
        amount: `${i + 10}.50`,
        description: `groceries ${i}`,
      });
      bob.push(transaction.id);
    }
    expect(await sealer.sealPending()).toBe(5);
    const lastDigest = await client.send('ledger.digest', {});
    await app.close();
    const dataSource = await openDatabase(database().config);
    opened.push(dataSource);
    return {
      dataSource,
      alice,
      bob,
      bobUserId,
      gapId,
      firstDigest,
      lastDigest,
    };
  }

  it('should find a sealed ledger clean, with the digests kept of it', async () => {
    const ledger = await sealedLedger();
    const report = await verify(ledger.dataSource, [
      ledger.firstDigest,
      ledger.lastDigest,
    ]);
    expect(report).toMatchObject({
      clean: true,
      blocks: 2,
      sealedRows: 9,
      unsealedRows: 0,
      last: ledger.lastDigest,
    });
  });

  type Tamper = (ledger: Ledger) => Promise<unknown>;
  const cases: [string, Tamper, (ledger: Ledger) => object][] = [
    [
      'an edited amount',
      ({ dataSource, bob }) =>
        dataSource.query(
          "UPDATE transacciones SET cantidad = '1000.50' WHERE id = ?",
          [bob[1]],
        ),
      ({ bob }) => ({ kind: 'row-edited', transactionId: bob[1] }),
    ],
    [
      'an edited description',
      ({ dataSource, alice }) =>
        dataSource.query(
          "UPDATE transacciones SET descripcion = 'rent (paid twice)' WHERE id = ?",
          [alice[2]],
        ),
      ({ alice }) => ({ kind: 'row-edited', transactionId: alice[2] }),
    ],
    [
      'an edited reference',
      ({ dataSource, alice }) =>
        dataSource.query(
          "UPDATE transacciones SET referencia = 'rent-x' WHERE id = ?",
          [alice[0]],
        ),
      ({ alice }) => ({ kind: 'row-edited', transactionId: alice[0] }),
    ],
    [
      'a payment moved to another user',
      ({ dataSource, alice, bobUserId }) =>
        dataSource.query(
          'UPDATE transacciones SET usuario_id = ? WHERE id = ?',
          [bobUserId, alice[3]],
        ),
      ({ alice }) => ({ kind: 'row-edited', transactionId: alice[3] }),
    ],
    [
      'a deleted row',
      ({ dataSource, bob }) =>
        dataSource.query('DELETE FROM transacciones WHERE id = ?', [bob[2]]),
      ({ bob }) => ({ kind: 'row-deleted', transactionId: bob[2] }),
    ],
    [
      'a row inserted into a sealed range',
      ({ dataSource, gapId, bobUserId }) =>
        dataSource.query(
          'INSERT INTO transacciones (id, usuario_id, cantidad, referencia, descripcion, creado_en) VALUES (?, ?, ?, NULL, ?, ?)',
          [gapId, bobUserId, '500.00', 'refund', sqlTime(Date.now() - 30_000)],
        ),
      ({ gapId }) => ({ kind: 'row-inserted', transactionId: gapId }),
    ],
    [
      'two rows swapped',
      async ({ dataSource, bob }) => {
        const read = async (id: string) =>
          (
            await dataSource.query<Record<string, unknown>[]>(
              'SELECT usuario_id, cantidad, descripcion, creado_en FROM transacciones WHERE id = ?',
              [id],
            )
          )[0];
        const [first, second] = [await read(bob[0]), await read(bob[1])];
        const write = (id: string, row: Record<string, unknown>) =>
          dataSource.query(
            'UPDATE transacciones SET usuario_id = ?, cantidad = ?, descripcion = ?, creado_en = ? WHERE id = ?',
            [row.usuario_id, row.cantidad, row.descripcion, row.creado_en, id],
          );
        await write(bob[0], second);
        await write(bob[1], first);
      },
      ({ bob }) => ({ kind: 'rows-swapped', transactionId: bob[0] }),
    ],
    [
      'an edited block',
      ({ dataSource }) =>
        dataSource.query(
          "UPDATE ledger_blocks SET sealed_at = '2020-01-01T00:00:00.000Z' WHERE block_number = 1",
        ),
      () => ({ kind: 'block-edited', block: 1 }),
    ],
    [
      'an edited entry',
      ({ dataSource, alice }) =>
        dataSource.query(
          'UPDATE ledger_entries SET leaf_hash = ? WHERE transaction_id = ?',
          ['0'.repeat(64), alice[1]],
        ),
      () => ({ kind: 'entries-edited' }),
    ],
    [
      'a deleted block',
      ({ dataSource }) =>
        dataSource.query('DELETE FROM ledger_blocks WHERE block_number = 1'),
      () => ({ kind: 'block-missing', block: 1 }),
    ],
    [
      'the last block deleted, its entries left behind',
      ({ dataSource, lastDigest }) =>
        dataSource.query('DELETE FROM ledger_blocks WHERE block_number = ?', [
          String(lastDigest.block),
        ]),
      ({ lastDigest }) => ({ kind: 'block-missing', block: lastDigest.block }),
    ],
    [
      'a history recomputed without the ledger key',
      async ({ dataSource, bob }) => {
        await dataSource.query(
          "UPDATE transacciones SET cantidad = '0.01' WHERE id = ?",
          [bob[3]],
        );
        await rewriteHistory(dataSource);
      },
      () => ({ kind: 'seal-invalid' }),
    ],
  ];

  it.each(cases)('should name %s', async (_name, tamper, expected) => {
    const ledger = await sealedLedger();
    await tamper(ledger);
    const report = await verify(ledger.dataSource);
    expect(report.clean).toBe(false);
    expect(report.problem).toMatchObject(expected(ledger));
  });

  it('should name a history rewritten with the key after a digest, which only the digest shows', async () => {
    const ledger = await sealedLedger();
    await ledger.dataSource.query(
      "UPDATE transacciones SET cantidad = '0.01' WHERE id = ?",
      [ledger.alice[0]],
    );
    await rewriteHistory(ledger.dataSource, TEST_LEDGER_KEY);
    // Whoever holds the key can reseal a consistent history (docs/threat-model.md) …
    expect((await verify(ledger.dataSource)).clean).toBe(true);
    // … but not one that matches a digest kept elsewhere.
    const report = await verify(ledger.dataSource, [ledger.firstDigest]);
    expect(report.problem).toMatchObject({
      kind: 'digest-mismatch',
      block: ledger.firstDigest.block,
    });
  });

  it('should name a history cut short after a digest', async () => {
    const ledger = await sealedLedger();
    const last = String(ledger.lastDigest.block);
    await ledger.dataSource.query(
      'DELETE FROM ledger_entries WHERE block_number = ?',
      [last],
    );
    await ledger.dataSource.query(
      'DELETE FROM ledger_blocks WHERE block_number = ?',
      [last],
    );
    const report = await verify(ledger.dataSource, [ledger.lastDigest]);
    expect(report.problem).toMatchObject({
      kind: 'digest-missing',
      block: ledger.lastDigest.block,
    });
  });

  describe('the command', () => {
    const ROOT = resolve(__dirname, '..', '..');

    function runVerify(
      args: string[],
      env: Record<string, string>,
    ): Promise<CliRun> {
      return runCommand(
        [
          process.execPath,
          '-r',
          'ts-node/register/transpile-only',
          join(ROOT, 'src', 'ledger', 'pai-server.ts'),
        ],
        args,
        { cwd: ROOT, env: { PATH: process.env.PATH, ...env } },
      );
    }

    function envFor(key = TEST_LEDGER_KEY): Record<string, string> {
      const { config, dataDir } = database();
      return {
        PAI_DATA_DIR: dataDir,
        ...(config.type === 'mysql' && { DATABASE_URL: config.url }),
        PAI_LEDGER_KEY: key.toString('base64'),
      };
    }

    it('should exit 0 on a clean ledger and 3 naming the row once tampered, with --json and --digest', async () => {
      const ledger = await sealedLedger();
      const digestFile = join(database().dataDir, 'digest.json');
      writeFileSync(digestFile, JSON.stringify(ledger.lastDigest));

      const clean = await runVerify(
        ['ledger', 'verify', '--digest', digestFile, '--json'],
        envFor(),
      );
      expect(clean.code).toBe(0);
      expect(JSON.parse(clean.stdout)).toMatchObject({
        clean: true,
        sealedRows: 9,
      });

      await ledger.dataSource.query(
        "UPDATE transacciones SET cantidad = '1.01' WHERE id = ?",
        [ledger.alice[1]],
      );
      const tampered = await runVerify(['ledger', 'verify'], envFor());
      expect(tampered.code).toBe(3);
      expect(tampered.stdout).toContain(
        `TAMPERED: transaction ${ledger.alice[1]} `,
      );
      expect(tampered.stderr).toBe('');
    });

    it('should tell a wrong key, a missing key, a bad digest file and a bad command apart, without a stack', async () => {
      await sealedLedger();
      const wrongKey = await runVerify(
        ['ledger', 'verify', '--json'],
        envFor(Buffer.alloc(32, 7)),
      );
      expect(wrongKey.code).toBe(3);
      expect(JSON.parse(wrongKey.stdout).problem.kind).toBe('seal-invalid');

      const noKey = envFor();
      delete noKey.PAI_LEDGER_KEY;
      const missing = await runVerify(['ledger', 'verify'], noKey);
      expect(missing.code).toBe(4);
      expect(missing.stderr).toContain('PAI_LEDGER_KEY');

      const badFile = join(database().dataDir, 'not-a-digest.json');
      writeFileSync(badFile, '{"block": "one"}');
      const badDigest = await runVerify(
        ['ledger', 'verify', '--digest', badFile],
        envFor(),
      );
      expect(badDigest.code).toBe(2);
      expect(badDigest.stderr).toContain('is not a digest');

      const usage = await runVerify(['ledger', 'check'], envFor());
      expect(usage.code).toBe(2);
      for (const run of [wrongKey, missing, badDigest, usage]) {
        expect(run.stderr).not.toMatch(/^\s+at /m);
      }
    });
  });
});
