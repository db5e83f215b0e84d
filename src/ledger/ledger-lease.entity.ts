import { Column, Entity, PrimaryColumn } from 'typeorm';

/** Who seals: the one row named `sealer`, held by one instance until `expires_at` (database clock, ms). */
@Entity({ name: 'ledger_lease' })
export class LedgerLease {
  @PrimaryColumn({ name: 'name', type: 'varchar', length: 32 })
  name: string;

  @Column({ name: 'holder', type: 'varchar', length: 64 })
  holder: string;

  @Column({ name: 'expires_at', type: 'bigint' })
  expiresAt: string;
}
