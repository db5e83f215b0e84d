import { Column, Entity, Index, PrimaryGeneratedColumn } from 'typeorm';
import { fromDatabaseAmount } from './amount';

@Entity({ name: 'transacciones' })
@Index('uq_transacciones_usuario_referencia', ['userId', 'reference'], {
  unique: true,
})
@Index('idx_transacciones_usuario_id', ['userId', 'id'])
export class Transaction {
  @PrimaryGeneratedColumn('increment', { name: 'id', type: 'bigint' })
  id: string;

  @Column({ name: 'usuario_id', type: 'bigint' })
  userId: string;

  /**
   * DECIMAL(15,2) on MySQL; TEXT holding the canonical "12.50" form on SQLite, whose DECIMAL
   * affinity would store a binary float. Either way the value reaches the code as a string.
   */
  @Column({
    name: 'cantidad',
    type: 'decimal',
    precision: 15,
    scale: 2,
    transformer: { to: (value: string) => value, from: fromDatabaseAmount },
  })
  amount: string;

  @Column({ name: 'referencia', type: 'varchar', length: 64, nullable: true })
  reference: string | null;

  @Column({ name: 'descripcion', type: 'varchar', length: 140, nullable: true })
  description: string | null;

  @Column({ name: 'creado_en', type: 'datetime', precision: 3 })
  createdAt: Date;
}
