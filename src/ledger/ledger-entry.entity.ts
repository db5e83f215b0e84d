import { Column, Entity, Index, PrimaryColumn } from 'typeorm';

/** A sealed transaction: its block, its place in it and its leaf hash as sealed. */
@Entity({ name: 'ledger_entries' })
@Index('uq_ledger_entries_block_position', ['blockNumber', 'position'], {
  unique: true,
})
export class LedgerEntry {
  @PrimaryColumn({ name: 'transaction_id', type: 'bigint' })
  transactionId: string;

  @Column({ name: 'block_number', type: 'bigint' })
  blockNumber: string;

  @Column({ name: 'position', type: 'int' })
  position: number;

  @Column({ name: 'leaf_hash', type: 'varchar', length: 64 })
  leafHash: string;
}
