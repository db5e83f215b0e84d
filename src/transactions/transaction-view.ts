import type { TransactionReply } from '@pai/client/protocol/patterns';
import type { Transaction } from './transaction.entity';

/** A stored row as the wire shows it, and as the ledger hashes it (clients/node/src/protocol/receipt.ts). */
export function toView(row: Transaction): TransactionReply {
  return {
    id: String(row.id),
    userId: String(row.userId),
    amount: row.amount,
    reference: row.reference,
    description: row.description,
    createdAt: row.createdAt.toISOString(),
  };
}
