import { createHash } from 'node:crypto';
import type { TransactionReply } from './patterns';
import {
  auditPath,
  blockHash,
  GENESIS_HASH,
  leafHash,
  merkleRoot,
  receiptProblem,
  rootFromPath,
  type BlockHeader,
  type Receipt,
} from './receipt';

const sha = (...parts: Buffer[]) =>
  createHash('sha256').update(Buffer.concat(parts)).digest();

/** RFC 6962 2.1, written as the RFC writes it: the reference the iterative code is held to. */
function referenceRoot(leaves: Buffer[]): Buffer {
  if (leaves.length === 1) return leaves[0];
  let k = 1;
  while (k * 2 < leaves.length) k *= 2;
  return sha(
    Buffer.from([1]),
    referenceRoot(leaves.slice(0, k)),
    referenceRoot(leaves.slice(k)),
  );
}

function row(id: number, amount = '1.00'): TransactionReply {
  return {
    id: String(id),
    userId: '7',
    amount,
    reference: null,
    description: `payment ${id}`,
    createdAt: '2026-12-03T10:00:00.000Z',
  };
}

function block(
  number: number,
  rows: TransactionReply[],
  previousHash: string,
): BlockHeader {
  const header = {
    number,
    firstId: rows[0].id,
    lastId: rows[rows.length - 1].id,
    rowCount: rows.length,
    merkleRoot: merkleRoot(rows.map(leafHash)),
    previousHash,
    sealedAt: '2026-12-03T10:00:01.000Z',
  };
  return { ...header, hash: blockHash(header) };
}

describe(merkleRoot.name, () => {
  it('should equal the RFC 6962 recursive definition for every size up to 40', () => {
    for (let n = 1; n <= 40; n += 1) {
      const leaves = Array.from({ length: n }, (_, i) => leafHash(row(i + 1)));
      expect(merkleRoot(leaves)).toBe(
        referenceRoot(leaves.map((leaf) => Buffer.from(leaf, 'hex'))).toString(
          'hex',
        ),
      );
    }
  });

  it('should separate leaves from nodes (RFC 6962 domain separation)', () => {
    const canonical = Buffer.from(JSON.stringify(row(1)));
    expect(leafHash(row(1))).not.toBe(sha(canonical).toString('hex'));
  });
});

describe(auditPath.name, () => {
  it('should lead every leaf of every size up to 33 to its root, and nowhere else', () => {
    for (let n = 1; n <= 33; n += 1) {
      const leaves = Array.from({ length: n }, (_, i) => leafHash(row(i + 1)));
      const root = merkleRoot(leaves);
      for (let i = 0; i < n; i += 1) {
        const path = auditPath(leaves, i);
        expect(rootFromPath(leaves[i], i, n, path)).toBe(root);
        expect(rootFromPath(leafHash(row(i + 1, '2.00')), i, n, path)).not.toBe(
          root,
        );
        if (n > 1) {
          expect(rootFromPath(leaves[i], (i + 1) % n, n, path)).not.toBe(root);
        }
      }
    }
  });
});

describe(receiptProblem.name, () => {
  const rows = Array.from({ length: 5 }, (_, i) => row(i + 1));
  const first = block(1, rows, GENESIS_HASH);
  const second = block(2, [row(6)], first.hash);
  const receipt = (): Receipt => ({
    transaction: rows[2],
    block: first,
    position: 2,
    path: auditPath(rows.map(leafHash), 2),
    headers: [second],
  });
  const digest = { block: 2, hash: second.hash, sealedAt: second.sealedAt };

  it('should accept a receipt chained up to the digest', () => {
    expect(receiptProblem(receipt(), digest)).toBeUndefined();
    expect(
      receiptProblem(
        { ...receipt(), headers: [] },
        {
          block: 1,
          hash: first.hash,
          sealedAt: first.sealedAt,
        },
      ),
    ).toBeUndefined();
  });

  it('should refuse an edited amount, a moved row, an edited block and a foreign digest', () => {
    const edited = receipt();
    edited.transaction = { ...edited.transaction, amount: '1000.00' };
    expect(receiptProblem(edited, digest)).toMatch(/Merkle path/);
    expect(receiptProblem({ ...receipt(), position: 3 }, digest)).toMatch(
      /Merkle path/,
    );
    const forgedRoot = { ...first, sealedAt: '2026-12-03T11:00:00.000Z' };
    expect(receiptProblem({ ...receipt(), block: forgedRoot }, digest)).toMatch(
      /block 1 does not match its hash/,
    );
    expect(
      receiptProblem(receipt(), { ...digest, hash: GENESIS_HASH }),
    ).toMatch(/digest's hash/);
    expect(receiptProblem({ ...receipt(), headers: [] }, digest)).toMatch(
      /reaches block 1/,
    );
  });
});

describe('the shared receipt fixture', () => {
  // The Python client checks the same file: both clients hash the same bytes.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const fixture = require('../../../../test/fixtures/ledger-receipt.json') as {
    leaf: string;
    receipt: Receipt;
    digest: { block: number; hash: string; sealedAt: string };
  };

  it('should hold, and fail with the amount changed', () => {
    expect(leafHash(fixture.receipt.transaction)).toBe(fixture.leaf);
    expect(receiptProblem(fixture.receipt, fixture.digest)).toBeUndefined();
    expect(
      receiptProblem(
        {
          ...fixture.receipt,
          transaction: { ...fixture.receipt.transaction, amount: '3.51' },
        },
        fixture.digest,
      ),
    ).toBeDefined();
  });
});
