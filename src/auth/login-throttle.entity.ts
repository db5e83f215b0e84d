import { Column, Entity, PrimaryColumn } from 'typeorm';

/** Consecutive failed logins of one username, known or not (so the table reveals nothing). */
@Entity({ name: 'intentos_login' })
export class LoginThrottle {
  @PrimaryColumn({
    name: 'nombre_usuario_normalizado',
    type: 'varchar',
    length: 32,
  })
  usernameKey: string;

  @Column({ name: 'fallos', type: 'int' })
  failures: number;

  /** Epoch milliseconds until which logins are refused without a password check. */
  @Column({ name: 'bloqueado_hasta', type: 'bigint', nullable: true })
  lockedUntil: string | null;

  @Column({ name: 'actualizado_en', type: 'bigint' })
  updatedAt: string;
}
