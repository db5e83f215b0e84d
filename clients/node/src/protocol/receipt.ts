import { createHash } from 'node:crypto';
import { canonicalJson } from './canonical-json';
import type {
  BlockHeader,
  LedgerDigest,
  Receipt,
  TransactionReply,
} from './patterns';

/**
 * The public half of the ledger (docs/ledger.md): how a transaction row becomes a Merkle leaf,
 * how leaves become a block's root, how blocks chain, and how a receipt is checked against a
 * digest. Plain SHA-256 throughout, so a client verifies without any key; the operator's seal
 * over each block hash (an HMAC under PAI_LEDGER_KEY) is checked by `pai-server ledger verify`.
 * Pure functions, no Nest: the client module and the service share them.
 */

/** The previous hash of block 1. */
export const GENESIS_HASH = '0'.repeat(64);

export type { BlockHeader, LedgerDigest, Receipt } from './patterns';

function sha256(...parts: (Buffer | string)[]): Buffer {
  const hash = createHash('sha256');
  for (const part of parts) hash.update(part);
  return hash.digest();
}

const LEAF = Buffer.from([0]);
const NODE = Buffer.from([1]);

/** The canonical bytes of a row: the JCS form of exactly the fields a client sees. */
export function canonicalRow(row: TransactionReply): string {
  return canonicalJson({
    id: row.id,
    userId: row.userId,
    amount: row.amount,
    reference: row.reference,
    description: row.description,
    createdAt: row.createdAt,
  });
}

/** RFC 6962 leaf hash: H(0x00 ‖ canonical row), hex. */
export function leafHash(row: TransactionReply): string {
  return sha256(LEAF, canonicalRow(row)).toString('hex');
}

function nodeHash(left: Buffer, right: Buffer): Buffer {
  return sha256(NODE, left, right);
}

/** The largest power of two below n (n ≥ 2). */
function split(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

/**
 * RFC 6962 Merkle tree hash of the leaves, hex. Iterative (level by level, an odd node carried up
 * unchanged), which gives the same root as the RFC's recursive split for every n.
 */
export function merkleRoot(leaves: readonly string[]): string {
  if (leaves.length === 0) throw new RangeError('a block has at least one row');
  let level: Buffer[] = leaves.map((leaf) => Buffer.from(leaf, 'hex'));
  while (level.length > 1) {
    const next: Buffer[] = [];
    for (let i = 0; i + 1 < level.length; i += 2) {
      next.push(nodeHash(level[i], level[i + 1]));
    }
    if (level.length % 2 === 1) next.push(level[level.length - 1]);
    level = next;
  }
  return level[0].toString('hex');
}

/** The audit path of leaf `index` (RFC 6962 2.1.1), hex, leaf level first. */
export function auditPath(leaves: readonly string[], index: number): string[] {
  if (index < 0 || index >= leaves.length) throw new RangeError('no such leaf');
  if (leaves.length === 1) return [];
  const k = split(leaves.length);
  return index < k
    ? [...auditPath(leaves.slice(0, k), index), merkleRoot(leaves.slice(k))]
    : [
        ...auditPath(leaves.slice(k), index - k),
        merkleRoot(leaves.slice(0, k)),
      ];
}

/** The root an audit path leads to (RFC 9162 2.1.3.2), or undefined when the path does not fit the tree's size. */
export function rootFromPath(
  leaf: string,
  index: number,
  size: number,
  path: readonly string[],
): string | undefined {
  if (index < 0 || index >= size) return undefined;
  let fn = index;
  let sn = size - 1;
  let r: Buffer = Buffer.from(leaf, 'hex');
  for (const sibling of path) {
    if (sn === 0) return undefined;
    const p = Buffer.from(sibling, 'hex');
    if (fn % 2 === 1 || fn === sn) {
      r = nodeHash(p, r);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn >>= 1;
          sn >>= 1;
        }
      }
    } else {
      r = nodeHash(r, p);
    }
    fn >>= 1;
    sn >>= 1;
  }
  return sn === 0 ? r.toString('hex') : undefined;
}

/** A block's hash: SHA-256 of the JCS form of every header field but the hash itself. */
export function blockHash(header: Omit<BlockHeader, 'hash'>): string {
  return sha256(
    canonicalJson({
      number: header.number,
      firstId: header.firstId,
      lastId: header.lastId,
      rowCount: header.rowCount,
      merkleRoot: header.merkleRoot,
      previousHash: header.previousHash,
      sealedAt: header.sealedAt,
    }),
  ).toString('hex');
}

/** Why a receipt does not hold; undefined when it does. */
export function receiptProblem(
  receipt: Receipt,
  digest: LedgerDigest,
): string | undefined {
  const { transaction, block, position, path, headers } = receipt;
  const root = rootFromPath(
    leafHash(transaction),
    position,
    block.rowCount,
    path,
  );
  if (root !== block.merkleRoot) {
    return 'the transaction is not in its block (Merkle path)';
  }
  if (
    BigInt(transaction.id) < BigInt(block.firstId) ||
    BigInt(transaction.id) > BigInt(block.lastId)
  ) {
    return 'the transaction id is outside its block';
  }
  let previous = block;
  for (const header of [block, ...headers]) {
    if (blockHash(header) !== header.hash) {
      return `block ${header.number} does not match its hash`;
    }
    if (header !== block) {
      if (
        header.number !== previous.number + 1 ||
        header.previousHash !== previous.hash
      ) {
        return `block ${header.number} does not follow block ${previous.number}`;
      }
    }
    previous = header;
  }
  if (previous.number !== digest.block) {
    return `the receipt reaches block ${previous.number}, the digest is of block ${digest.block}`;
  }
  if (previous.hash !== digest.hash) {
    return `block ${digest.block} does not have the digest's hash`;
  }
  return undefined;
}
