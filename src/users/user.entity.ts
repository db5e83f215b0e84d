import { Column, Entity, Index, PrimaryGeneratedColumn } from 'typeorm';

@Entity({ name: 'usuarios' })
@Index('uq_usuarios_nombre_usuario_normalizado', ['usernameKey'], {
  unique: true,
})
export class User {
  @PrimaryGeneratedColumn('increment', { name: 'id', type: 'bigint' })
  id: string;

  /** As the user typed it at registration, shown back to them. */
  @Column({ name: 'nombre_usuario', type: 'varchar', length: 32 })
  username: string;

  /**
   * Lower-cased: `Alice` and `alice` are one account, and the unique index on this column is what
   * guarantees it, whatever collation the MySQL server defaults to.
   */
  @Column({ name: 'nombre_usuario_normalizado', type: 'varchar', length: 32 })
  usernameKey: string;

  /** bcrypt hash of the peppered password; never the password. */
  @Column({ name: 'clave', type: 'varchar', length: 255 })
  passwordHash: string;

  @Column({ name: 'creado_en', type: 'datetime', precision: 3 })
  createdAt: Date;
}

/** The one normalization of a username, for lookups and the uniqueness rule. */
export function usernameKey(username: string): string {
  return username.toLowerCase();
}
