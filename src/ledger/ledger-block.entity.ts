import { Column, Entity, PrimaryColumn } from 'typeorm';

/** One sealed block of the ledger (docs/ledger.md); `hash` and `seal` cover every other column. */
@Entity({ name: 'ledger_blocks' })
export class LedgerBlock {
  @PrimaryColumn({ name: 'block_number', type: 'bigint' })
  number: string;

  @Column({ name: 'first_id', type: 'bigint' })
  firstId: string;

  @Column({ name: 'last_id', type: 'bigint' })
  lastId: string;

  @Column({ name: 'row_count', type: 'int' })
  rowCount: number;

  @Column({ name: 'merkle_root', type: 'varchar', length: 64 })
  merkleRoot: string;

  @Column({ name: 'previous_hash', type: 'varchar', length: 64 })
  previousHash: string;

  @Column({ name: 'hash', type: 'varchar', length: 64 })
  hash: string;

  /** HMAC-SHA256 under PAI_LEDGER_KEY over `hash`, hex. */
  @Column({ name: 'seal', type: 'varchar', length: 64 })
  seal: string;

  /** ISO 8601 with milliseconds, as hashed: text, so no driver or time zone can reformat it. */
  @Column({ name: 'sealed_at', type: 'varchar', length: 24 })
  sealedAt: string;
}
