import { Test } from '@nestjs/testing';
import { Clock } from '../common/clock';
import { settle } from '../common/batcher';
import { UnavailableError } from '../common/unavailable';
import { Database } from '../database/database.service';
import { CreateRequest, TransactionWriter } from './transaction-writer';

/**
 * A MySQL Database that answers each script as the server would for requests whose session is
 * live and whose insert succeeds, and fails any script holding a request marked `poison`.
 */
class FakeMysql {
  readonly dialect = 'mysql';
  readonly scripts: string[][] = [];
  failure: (statements: string[], parameters: unknown[]) => Error | undefined =
    () => undefined;
  private nextId = 100;

  script(sql: string, parameters: unknown[]): Promise<unknown[]> {
    const statements = sql.split(';\n');
    this.scripts.push(statements);
    const error = this.failure(statements, parameters);
    if (error) return Promise.reject(error);
    return Promise.resolve(
      statements.map((statement) => {
        if (!statement.startsWith('SELECT @n0')) return {};
        const row: Record<string, unknown> = {};
        for (const [, i] of statement.matchAll(/@n(\d+) AS/g)) {
          Object.assign(row, {
            [`n${i}`]: 1,
            [`u${i}`]: '7',
            [`t${i}`]: String(this.nextId++),
          });
        }
        return [row];
      }),
    );
  }
}

function request(amount: string): CreateRequest {
  return {
    tokenHash: 'h'.repeat(64),
    amount,
    reference: null,
    description: null,
    createdAt: new Date(0),
  };
}

describe(TransactionWriter.name, () => {
  let writer: TransactionWriter;
  let database: FakeMysql;

  beforeEach(async () => {
    database = new FakeMysql();
    const moduleRef = await Test.createTestingModule({
      providers: [
        TransactionWriter,
        { provide: Database, useValue: database },
        { provide: Clock, useValue: { now: () => 0 } },
      ],
    }).compile();
    writer = moduleRef.get(TransactionWriter);
  });

  it('should write requests that arrive together in one script, one transaction', async () => {
    const outcomes = await Promise.all(
      ['1.00', '2.00', '3.00'].map((amount) => writer.write(request(amount))),
    );

    expect(database.scripts).toHaveLength(1);
    const [script] = database.scripts;
    expect(script[1]).toBe('START TRANSACTION');
    expect(script[script.length - 1]).toBe('COMMIT');
    expect(outcomes.map((outcome) => outcome.kind)).toEqual([
      'created',
      'created',
      'created',
    ]);
  });

  it("should write a failed batch's requests again one by one, so a failure stays with its own request", async () => {
    database.failure = (_, parameters) =>
      parameters.includes('6.66') ? new Error('ER_DATA_TOO_LONG') : undefined;

    const outcomes = await Promise.all(
      ['1.00', '6.66', '3.00'].map((amount) =>
        settle(() => writer.write(request(amount))),
      ),
    );

    expect(outcomes.map((outcome) => outcome.status)).toEqual([
      'fulfilled',
      'rejected',
      'fulfilled',
    ]);
    // The batch, then each request alone.
    expect(database.scripts).toHaveLength(4);
  });

  it('should fail every request of a batch alike when the database is unavailable, without retrying each', async () => {
    database.failure = () =>
      new UnavailableError('database', 'PROTOCOL_CONNECTION_LOST');

    const outcomes = await Promise.all(
      ['1.00', '2.00'].map((amount) =>
        settle(() => writer.write(request(amount))),
      ),
    );

    expect(outcomes.map((outcome) => outcome.status)).toEqual([
      'rejected',
      'rejected',
    ]);
    expect(database.scripts).toHaveLength(1);
  });
});
