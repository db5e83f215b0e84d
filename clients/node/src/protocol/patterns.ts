/** The request and reply payload of every pattern (docs/protocol.md 5), for typed calls. */
export interface TransactionReply {
  id: string;
  userId: string;
  amount: string;
  reference: string | null;
  description: string | null;
  createdAt: string;
}

/** A ledger block as stored and as a receipt or digest names it; `hash` covers every other field (clients/node/src/protocol/receipt.ts). */
export interface BlockHeader {
  number: number;
  /** The lowest and highest transaction id in the block: it covers every id after the previous block's lastId up to lastId. */
  firstId: string;
  lastId: string;
  rowCount: number;
  merkleRoot: string;
  previousHash: string;
  sealedAt: string;
  hash: string;
}

/** What an operator keeps outside the database (`pai ledger digest`, `--digest FILE`). */
export interface LedgerDigest {
  block: number;
  hash: string;
  sealedAt: string;
}

export interface Receipt {
  transaction: TransactionReply;
  block: BlockHeader;
  /** The row's index among the block's rows, in id order, from 0. */
  position: number;
  /** Sibling hashes from the leaf up to the root (RFC 6962 2.1.1 audit path). */
  path: string[];
  /** The blocks after `block` up to the digest the request named, in order. */
  headers: BlockHeader[];
}

export interface PaiPatterns {
  'system.ping': {
    request: Record<string, never>;
    reply: { serverTime: number };
  };
  'auth.register': {
    request: { username: string; password: string };
    reply: { userId: string; username: string; createdAt: string };
  };
  'auth.login': {
    request: { username: string; password: string };
    reply: { token: string; userId: string; expiresAt: string };
  };
  'auth.logout': { request: { token: string }; reply: { revoked: true } };
  'users.me': {
    request: { token: string };
    reply: {
      userId: string;
      username: string;
      createdAt: string;
      transactionCount: number;
      total: string;
    };
  };
  'transactions.create': {
    request: {
      token: string;
      amount: string;
      reference?: string;
      description?: string;
    };
    reply: { transaction: TransactionReply; created: boolean };
  };
  'transactions.list': {
    request: { token: string; limit?: number; before?: string };
    reply: { items: TransactionReply[]; nextBefore: string | null };
  };
  'transactions.receipt': {
    request: { token: string; id: string; digestBlock?: number };
    reply: Receipt;
  };
  'ledger.digest': {
    request: Record<string, never>;
    reply: LedgerDigest;
  };
}

export type PaiPattern = keyof PaiPatterns;
