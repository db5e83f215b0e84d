import {
  MigrationInterface,
  QueryRunner,
  Table,
  TableColumnOptions,
  TableForeignKey,
  TableIndex,
} from 'typeorm';

/**
 * The schema of the original pai_1 design (usuarios, transacciones, with their column names) plus
 * sessions, login throttling and the nonce record. Written with the QueryRunner table API so one
 * migration serves MySQL/MariaDB and SQLite; the few differences are in the helpers below.
 */
export class InitialSchema1764288000000 implements MigrationInterface {
  name = 'InitialSchema1764288000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    const mysql = queryRunner.connection.driver.options.type === 'mysql';

    // SQLite allows AUTOINCREMENT only on "INTEGER PRIMARY KEY" (already 64-bit there).
    const id = (): TableColumnOptions => ({
      name: 'id',
      type: mysql ? 'bigint' : 'integer',
      isPrimary: true,
      isGenerated: true,
      generationStrategy: 'increment',
    });
    const reference = (name: string): TableColumnOptions => ({
      name,
      type: mysql ? 'bigint' : 'integer',
    });
    // Identifiers, hashes and nonces compare byte for byte: a case-insensitive collation would
    // make nonce "abc…" a replay of "ABC…".
    const ascii = (
      name: string,
      length: number,
      extra: Partial<TableColumnOptions> = {},
    ) => ({
      name,
      type: 'varchar',
      length: String(length),
      ...(mysql ? { charset: 'ascii', collation: 'ascii_bin' } : {}),
      ...extra,
    });
    const text = (
      name: string,
      length: number,
      extra: Partial<TableColumnOptions> = {},
    ) => ({
      name,
      type: 'varchar',
      length: String(length),
      ...(mysql ? { charset: 'utf8mb4', collation: 'utf8mb4_bin' } : {}),
      ...extra,
    });
    const time = (
      name: string,
      extra: Partial<TableColumnOptions> = {},
    ): TableColumnOptions => ({
      name,
      type: 'datetime',
      precision: 3,
      ...extra,
    });
    const engine = mysql ? 'InnoDB' : undefined;

    await queryRunner.createTable(
      new Table({
        name: 'usuarios',
        engine,
        columns: [
          id(),
          text('nombre_usuario', 32),
          ascii('nombre_usuario_normalizado', 32),
          ascii('clave', 255),
          time('creado_en'),
        ],
        indices: [
          new TableIndex({
            name: 'uq_usuarios_nombre_usuario_normalizado',
            columnNames: ['nombre_usuario_normalizado'],
            isUnique: true,
          }),
        ],
      }),
    );

    await queryRunner.createTable(
      new Table({
        name: 'transacciones',
        engine,
        columns: [
          id(),
          reference('usuario_id'),
          // SQLite's DECIMAL affinity stores a binary float; TEXT keeps the exact "12.50".
          mysql
            ? { name: 'cantidad', type: 'decimal', precision: 15, scale: 2 }
            : { name: 'cantidad', type: 'text' },
          ascii('referencia', 64, { isNullable: true }),
          text('descripcion', 140, { isNullable: true }),
          time('creado_en'),
        ],
        indices: [
          new TableIndex({
            name: 'uq_transacciones_usuario_referencia',
            columnNames: ['usuario_id', 'referencia'],
            isUnique: true,
          }),
          new TableIndex({
            name: 'idx_transacciones_usuario_id',
            columnNames: ['usuario_id', 'id'],
          }),
        ],
        foreignKeys: [
          new TableForeignKey({
            name: 'fk_transacciones_usuario',
            columnNames: ['usuario_id'],
            referencedTableName: 'usuarios',
            referencedColumnNames: ['id'],
            onDelete: 'RESTRICT',
          }),
        ],
      }),
    );

    await queryRunner.createTable(
      new Table({
        name: 'sesiones',
        engine,
        columns: [
          id(),
          reference('usuario_id'),
          ascii('token_hash', 64),
          time('creado_en'),
          time('expira_en'),
          time('revocada_en', { isNullable: true }),
        ],
        indices: [
          new TableIndex({
            name: 'uq_sesiones_token_hash',
            columnNames: ['token_hash'],
            isUnique: true,
          }),
          new TableIndex({
            name: 'idx_sesiones_expira_en',
            columnNames: ['expira_en'],
          }),
        ],
        foreignKeys: [
          new TableForeignKey({
            name: 'fk_sesiones_usuario',
            columnNames: ['usuario_id'],
            referencedTableName: 'usuarios',
            referencedColumnNames: ['id'],
            onDelete: 'CASCADE',
          }),
        ],
      }),
    );

    await queryRunner.createTable(
      new Table({
        name: 'intentos_login',
        engine,
        columns: [
          ascii('nombre_usuario_normalizado', 32, { isPrimary: true }),
          { name: 'fallos', type: 'int' },
          { name: 'bloqueado_hasta', type: 'bigint', isNullable: true },
          { name: 'actualizado_en', type: 'bigint' },
        ],
      }),
    );

    await queryRunner.createTable(
      new Table({
        name: 'nonces_usados',
        engine,
        columns: [
          ascii('kid', 64, { isPrimary: true }),
          ascii('nonce', 128, { isPrimary: true }),
          { name: 'expira_en', type: 'bigint' },
        ],
        indices: [
          new TableIndex({
            name: 'idx_nonces_usados_expira_en',
            columnNames: ['expira_en'],
          }),
        ],
      }),
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.dropTable('nonces_usados');
    await queryRunner.dropTable('intentos_login');
    await queryRunner.dropTable('sesiones');
    await queryRunner.dropTable('transacciones');
    await queryRunner.dropTable('usuarios');
  }
}
