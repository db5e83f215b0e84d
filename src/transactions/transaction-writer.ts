import type BetterSqlite3 from 'better-sqlite3';
import { Injectable } from '@nestjs/common';
import { Batcher, settle } from '../common/batcher';
import { UnavailableError } from '../common/unavailable';
import { Database } from '../database/database.service';
import { Clock } from '../common/clock';
import { fromDatabaseAmount } from './amount';
import {
  fromSqliteDatetime,
  toSqliteDatetime,
} from '../database/sqlite-datetime';
import { Transaction } from './transaction.entity';

/** One transactions.create, checked and ready to write. */
export interface CreateRequest {
  /** SHA-256 of the session token: the session is checked in the same transaction as the insert. */
  tokenHash: string;
  amount: string;
  reference: string | null;
  description: string | null;
  createdAt: Date;
  /** The request's nonce, when the guard left it to be recorded with the insert. */
  nonce?: { kid: string; nonce: string; expiresAt: number };
}

/** What the database said of one request; each request gets its own, whatever its batch held. */
export type CreateOutcome =
  | { kind: 'replay' }
  | { kind: 'unauthenticated' }
  | { kind: 'created'; row: Transaction }
  /** The user already has a transaction with this reference (it may have come in this batch). */
  | { kind: 'taken'; row: Transaction };

/** Requests in one batch at most: on MySQL five statements each, in one script. */
const MAX_BATCH = 128;
/**
 * Batches written at once at most. More than one lets a batch fill while another commits; a few
 * keep InnoDB's group commit busy without taking the whole pool from the other requests.
 */
const MAX_BATCHES_IN_FLIGHT = 4;

interface StoredRow {
  id: number | string;
  usuario_id: number | string;
  cantidad: unknown;
  descripcion: string | null;
  creado_en: Date | string;
}

function rowOf(stored: StoredRow, reference: string | null): Transaction {
  return Object.assign(new Transaction(), {
    id: String(stored.id),
    userId: String(stored.usuario_id),
    amount: fromDatabaseAmount(stored.cantidad),
    reference,
    description: stored.descripcion,
    createdAt:
      stored.creado_en instanceof Date
        ? stored.creado_en
        : fromSqliteDatetime(stored.creado_en),
  });
}

/**
 * The write path of transactions.create: the requests that arrive together are written in one
 * database transaction, one commit for all of them, and each still gets exactly its own outcome.
 * For each request, in order: record its nonce (when the guard deferred it), check its session,
 * insert its row unless the user's reference is taken, and if it is taken read the row that holds
 * it. A repeated nonce, a dead session or a taken reference only changes that request's outcome;
 * a batch that fails for any other reason is rolled back whole and its requests are written again
 * one by one, so that one request's failure is its own.
 */
@Injectable()
export class TransactionWriter {
  private readonly batcher = new Batcher<CreateRequest, CreateOutcome>(
    (requests) => this.writeBatch(requests),
    { maxBatch: MAX_BATCH, maxInFlight: MAX_BATCHES_IN_FLIGHT },
  );
  private statements?: SqliteStatements;

  constructor(
    private readonly database: Database,
    private readonly clock: Clock,
  ) {}

  write(request: CreateRequest): Promise<CreateOutcome> {
    return this.batcher.submit(request);
  }

  private async writeBatch(
    requests: readonly CreateRequest[],
  ): Promise<PromiseSettledResult<CreateOutcome>[]> {
    try {
      const outcomes = await this.writeTogether(requests);
      return outcomes.map((value) => ({ status: 'fulfilled', value }));
    } catch (error) {
      // An unreachable database fails every request alike; anything else may be one request's
      // doing, and is left to that request alone.
      if (requests.length === 1 || error instanceof UnavailableError) {
        throw error;
      }
      return Promise.all(
        requests.map((request) =>
          settle(async () => (await this.writeTogether([request]))[0]),
        ),
      );
    }
  }

  private writeTogether(
    requests: readonly CreateRequest[],
  ): Promise<CreateOutcome[]> {
    const now = new Date(this.clock.now());
    return this.database.dialect === 'mysql'
      ? this.writeMysql(requests, now)
      : this.database.sqlite((db) => this.writeSqlite(db, requests, now));
  }

  /**
   * One script, one round trip, one commit. Each request's steps leave their results in session
   * variables (@n: nonce new, @u: the session's user, @t: the new row's id) that the last
   * statements read back. INSERT IGNORE is there for the duplicate keys, which decide REPLAY and
   * a taken reference; the payload pipe has bounded every value to its column, so it can ignore
   * nothing else.
   */
  private async writeMysql(
    requests: readonly CreateRequest[],
    now: Date,
  ): Promise<CreateOutcome[]> {
    // READ COMMITTED: a reference taken by another instance's batch that committed while this
    // one waited on its key is then visible to the read of the row that holds it (under
    // REPEATABLE READ that read would see the snapshot of the session check, without the row).
    const sql: string[] = [
      'SET TRANSACTION ISOLATION LEVEL READ COMMITTED',
      'START TRANSACTION',
    ];
    const parameters: unknown[] = [];
    const report: string[] = [];
    const taken: string[] = [];
    requests.forEach((request, i) => {
      if (request.nonce) {
        sql.push(
          'INSERT IGNORE INTO nonces_usados (kid, nonce, expira_en) VALUES (?, ?, ?)',
          `SET @n${i} = ROW_COUNT()`,
        );
        const { kid, nonce, expiresAt } = request.nonce;
        parameters.push(kid, nonce, expiresAt);
      } else {
        sql.push(`SET @n${i} = 1`);
      }
      sql.push(
        `SET @u${i} = IF(@n${i} = 1, (SELECT usuario_id FROM sesiones WHERE token_hash = ? AND revocada_en IS NULL AND expira_en > ?), NULL)`,
        `INSERT IGNORE INTO transacciones (usuario_id, cantidad, referencia, descripcion, creado_en) SELECT @u${i}, ?, ?, ?, ? FROM DUAL WHERE @u${i} IS NOT NULL`,
        `SET @t${i} = IF(ROW_COUNT() = 1, LAST_INSERT_ID(), NULL)`,
      );
      parameters.push(
        request.tokenHash,
        now,
        request.amount,
        request.reference,
        request.description,
        request.createdAt,
      );
      report.push(`@n${i} AS n${i}, @u${i} AS u${i}, @t${i} AS t${i}`);
      if (request.reference !== null) {
        taken.push(
          `SELECT ${i} AS i, id, usuario_id, cantidad, descripcion, creado_en FROM transacciones WHERE @t${i} IS NULL AND usuario_id = @u${i} AND referencia = ?`,
        );
      }
    });
    for (const request of requests) {
      if (request.reference !== null) parameters.push(request.reference);
    }
    sql.push(`SELECT ${report.join(', ')}`);
    if (taken.length > 0) sql.push(taken.join(' UNION ALL '));
    sql.push('COMMIT');

    const results = await this.database.script(sql.join(';\n'), parameters);
    const commitIndex = sql.length - 1;
    const reportRow = (
      results[commitIndex - (taken.length > 0 ? 2 : 1)] as Record<
        string,
        string | number | null
      >[]
    )[0];
    const takenRows = new Map<number, StoredRow>();
    if (taken.length > 0) {
      for (const row of results[commitIndex - 1] as (StoredRow & {
        i: number | string;
      })[]) {
        takenRows.set(Number(row.i), row);
      }
    }
    return requests.map((request, i): CreateOutcome => {
      if (Number(reportRow[`n${i}`]) !== 1) return { kind: 'replay' };
      const userId = reportRow[`u${i}`];
      if (userId === null || userId === undefined) {
        return { kind: 'unauthenticated' };
      }
      const id = reportRow[`t${i}`];
      if (id !== null && id !== undefined) {
        return {
          kind: 'created',
          row: Object.assign(new Transaction(), {
            id: String(id),
            userId: String(userId),
            amount: request.amount,
            reference: request.reference,
            description: request.description,
            createdAt: request.createdAt,
          }),
        };
      }
      const existing = takenRows.get(i);
      // Without a reference nothing can be taken; a row that holds it is never deleted.
      if (!existing)
        throw new Error(
          'the insert wrote no row and no row holds its reference',
        );
      return { kind: 'taken', row: rowOf(existing, request.reference) };
    });
  }

  /**
   * The same steps with prepared statements, synchronously inside one IMMEDIATE transaction:
   * better-sqlite3 runs them without a round trip, so the batch costs one commit (one fsync).
   */
  private writeSqlite(
    db: BetterSqlite3.Database,
    requests: readonly CreateRequest[],
    now: Date,
  ): CreateOutcome[] {
    const statements = this.prepare(db);
    const nowText = toSqliteDatetime(now);
    const writeAll = db.transaction(() =>
      requests.map((request): CreateOutcome => {
        if (request.nonce) {
          const { kid, nonce, expiresAt } = request.nonce;
          if (statements.nonce.run(kid, nonce, expiresAt).changes !== 1) {
            return { kind: 'replay' };
          }
        }
        const session = statements.session.get(request.tokenHash, nowText) as
          { usuario_id: number | string } | undefined;
        if (!session) return { kind: 'unauthenticated' };
        const inserted = statements.insert.get(
          session.usuario_id,
          request.amount,
          request.reference,
          request.description,
          toSqliteDatetime(request.createdAt),
        ) as { id: number | string } | undefined;
        if (inserted) {
          return {
            kind: 'created',
            row: Object.assign(new Transaction(), {
              id: String(inserted.id),
              userId: String(session.usuario_id),
              amount: request.amount,
              reference: request.reference,
              description: request.description,
              createdAt: request.createdAt,
            }),
          };
        }
        const existing = statements.taken.get(
          session.usuario_id,
          request.reference,
        ) as StoredRow | undefined;
        if (!existing)
          throw new Error(
            'the insert wrote no row and no row holds its reference',
          );
        return { kind: 'taken', row: rowOf(existing, request.reference) };
      }),
    );
    return writeAll.immediate();
  }

  private prepare(db: BetterSqlite3.Database): SqliteStatements {
    if (this.statements?.db === db) return this.statements;
    this.statements = {
      db,
      nonce: db.prepare(
        'INSERT INTO nonces_usados (kid, nonce, expira_en) VALUES (?, ?, ?) ON CONFLICT DO NOTHING',
      ),
      session: db.prepare(
        'SELECT usuario_id FROM sesiones WHERE token_hash = ? AND revocada_en IS NULL AND expira_en > ?',
      ),
      insert: db.prepare(
        'INSERT INTO transacciones (usuario_id, cantidad, referencia, descripcion, creado_en) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING id',
      ),
      taken: db.prepare(
        'SELECT id, usuario_id, cantidad, descripcion, creado_en FROM transacciones WHERE usuario_id = ? AND referencia = ?',
      ),
    };
    return this.statements;
  }
}

interface SqliteStatements {
  db: BetterSqlite3.Database;
  nonce: BetterSqlite3.Statement;
  session: BetterSqlite3.Statement;
  insert: BetterSqlite3.Statement;
  taken: BetterSqlite3.Statement;
}
