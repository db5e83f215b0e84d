import { Column, Entity, Index, PrimaryColumn } from 'typeorm';

/** One accepted (kid, nonce) pair, kept until its message's ts plus the window has passed. */
@Entity({ name: 'nonces_usados' })
@Index('idx_nonces_usados_expira_en', ['expiresAt'])
export class UsedNonce {
  @PrimaryColumn({ name: 'kid', type: 'varchar', length: 64 })
  kid: string;

  @PrimaryColumn({ name: 'nonce', type: 'varchar', length: 128 })
  nonce: string;

  /** Epoch milliseconds: compared with the clock, never shown, so no time zone can creep in. */
  @Column({ name: 'expira_en', type: 'bigint' })
  expiresAt: string;
}
