import { Injectable } from '@nestjs/common';
import { Between } from 'typeorm';
import { Database } from '../database/database.service';
import { ErrorCode } from '@pai/client/protocol/error-code';
import { ProtocolError } from '../protocol/protocol-error';
import {
  auditPath,
  type BlockHeader,
  type LedgerDigest,
  type Receipt,
} from '@pai/client/protocol/receipt';
import { Transaction } from '../transactions/transaction.entity';
import { toView } from '../transactions/transaction-view';
import { LedgerBlock } from './ledger-block.entity';
import { LedgerEntry } from './ledger-entry.entity';

/**
 * Headers one receipt carries at most: a digest further on is checked against a newer digest, or
 * by the operator's verify (docs/ledger.md, "Receipts").
 */
export const MAX_RECEIPT_HEADERS = 1_000;

export function headerOf(block: LedgerBlock): BlockHeader {
  return {
    number: Number(block.number),
    firstId: String(block.firstId),
    lastId: String(block.lastId),
    rowCount: block.rowCount,
    merkleRoot: block.merkleRoot,
    previousHash: block.previousHash,
    sealedAt: block.sealedAt,
    hash: block.hash,
  };
}

@Injectable()
export class LedgerService {
  constructor(private readonly database: Database) {}

  /** The latest block; NOT_SEALED while there is none. */
  async digest(): Promise<LedgerDigest> {
    const [last] = await this.database.run((manager) =>
      manager.find(LedgerBlock, { order: { number: 'DESC' }, take: 1 }),
    );
    if (!last) throw new ProtocolError(ErrorCode.NOT_SEALED);
    return {
      block: Number(last.number),
      hash: last.hash,
      sealedAt: last.sealedAt,
    };
  }

  /** The caller's sealed row with what proves it is in the ledger; read in one transaction. */
  async receipt(
    userId: string,
    id: string,
    digestBlock?: number,
  ): Promise<Receipt> {
    return this.database.transaction(async (manager) => {
      const row = await manager.findOneBy(Transaction, { id });
      if (!row || String(row.userId) !== userId) {
        throw new ProtocolError(ErrorCode.NOT_FOUND);
      }
      const entry = await manager.findOneBy(LedgerEntry, { transactionId: id });
      if (!entry) throw new ProtocolError(ErrorCode.NOT_SEALED);
      const number = Number(entry.blockNumber);
      const until = digestBlock ?? number;
      if (until < number || until - number > MAX_RECEIPT_HEADERS) {
        throw ProtocolError.badRequest([
          {
            field: 'payload.digestBlock',
            problem: `must be from the transaction's block (${number}) to ${MAX_RECEIPT_HEADERS} blocks after it`,
          },
        ]);
      }
      const blocks = await manager.find(LedgerBlock, {
        where: { number: Between(String(number), String(until)) },
        order: { number: 'ASC' },
      });
      if (blocks.length !== until - number + 1) {
        throw ProtocolError.badRequest([
          {
            field: 'payload.digestBlock',
            problem: 'names a block that does not exist yet',
          },
        ]);
      }
      const leaves = (
        await manager.find(LedgerEntry, {
          where: { blockNumber: entry.blockNumber },
          order: { position: 'ASC' },
        })
      ).map((each) => each.leafHash);
      const [block, ...later] = blocks.map(headerOf);
      return {
        transaction: toView(row),
        block,
        position: entry.position,
        path: auditPath(leaves, entry.position),
        headers: later,
      };
    });
  }
}
