import type { TransactionReply } from '@pai/client/protocol/patterns';
import { fromDatabaseAmount } from '../transactions/amount';
import { fromSqliteDatetime } from '../database/sqlite-datetime';

/**
 * Transaction rows read with plain SQL, for the sealer and the verifier alike: one conversion to
 * the wire form both hash, so they agree by construction, and no entity hydration on paths that
 * read a thousand rows at a time (it was most of the sealer's time).
 */
export const SELECT_ROWS =
  'SELECT id, usuario_id, cantidad, referencia, descripcion, creado_en FROM transacciones';

export interface TransactionRow {
  id: string | number;
  usuario_id: string | number;
  cantidad: string;
  referencia: string | null;
  descripcion: string | null;
  creado_en: string | Date;
}

/** A row as the service reads it (the entity's transformers), in the form the leaves hash. */
export function viewOf(row: TransactionRow): TransactionReply {
  let createdAt: string;
  const raw = row.creado_en;
  if (raw instanceof Date) {
    createdAt = raw.toISOString();
  } else {
    const date = fromSqliteDatetime(raw);
    createdAt = Number.isNaN(date.getTime()) ? String(raw) : date.toISOString();
  }
  let amount: string;
  try {
    amount = fromDatabaseAmount(row.cantidad);
  } catch {
    amount = String(row.cantidad);
  }
  return {
    id: String(row.id),
    userId: String(row.usuario_id),
    amount,
    reference: row.referencia,
    description: row.descripcion,
    createdAt,
  };
}
