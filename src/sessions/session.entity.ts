import { Column, Entity, Index, PrimaryGeneratedColumn } from 'typeorm';

@Entity({ name: 'sesiones' })
@Index('uq_sesiones_token_hash', ['tokenHash'], { unique: true })
@Index('idx_sesiones_expira_en', ['expiresAt'])
export class Session {
  @PrimaryGeneratedColumn('increment', { name: 'id', type: 'bigint' })
  id: string;

  @Column({ name: 'usuario_id', type: 'bigint' })
  userId: string;

  /** SHA-256 of the token, hex: a copy of this table opens no session. */
  @Column({ name: 'token_hash', type: 'varchar', length: 64 })
  tokenHash: string;

  @Column({ name: 'creado_en', type: 'datetime', precision: 3 })
  createdAt: Date;

  @Column({ name: 'expira_en', type: 'datetime', precision: 3 })
  expiresAt: Date;

  @Column({
    name: 'revocada_en',
    type: 'datetime',
    precision: 3,
    nullable: true,
  })
  revokedAt: Date | null;
}
