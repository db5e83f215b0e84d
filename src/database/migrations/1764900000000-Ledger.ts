import {
  MigrationInterface,
  QueryRunner,
  Table,
  TableColumnOptions,
  TableIndex,
} from 'typeorm';

/**
 * The ledger's tables beside `transacciones`, whose columns stay as they are (docs/ledger.md).
 * Primary keys make double sealing impossible whatever the sealers do: a block number and a
 * transaction id can each be written once.
 */
export class Ledger1764900000000 implements MigrationInterface {
  name = 'Ledger1764900000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    const mysql = queryRunner.connection.driver.options.type === 'mysql';
    const integer = (
      name: string,
      extra: Partial<TableColumnOptions> = {},
    ) => ({
      name,
      type: mysql ? 'bigint' : 'integer',
      ...extra,
    });
    // Hex hashes and ISO times compare byte for byte.
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
    const engine = mysql ? 'InnoDB' : undefined;

    await queryRunner.createTable(
      new Table({
        name: 'ledger_blocks',
        engine,
        columns: [
          integer('block_number', { isPrimary: true }),
          integer('first_id'),
          integer('last_id'),
          { name: 'row_count', type: 'int' },
          ascii('merkle_root', 64),
          ascii('previous_hash', 64),
          ascii('hash', 64),
          ascii('seal', 64),
          ascii('sealed_at', 24),
        ],
      }),
    );
    await queryRunner.createTable(
      new Table({
        name: 'ledger_entries',
        engine,
        columns: [
          integer('transaction_id', { isPrimary: true }),
          integer('block_number'),
          { name: 'position', type: 'int' },
          ascii('leaf_hash', 64),
        ],
        indices: [
          new TableIndex({
            name: 'uq_ledger_entries_block_position',
            columnNames: ['block_number', 'position'],
            isUnique: true,
          }),
        ],
      }),
    );
    await queryRunner.createTable(
      new Table({
        name: 'ledger_lease',
        engine,
        columns: [
          ascii('name', 32, { isPrimary: true }),
          ascii('holder', 64),
          integer('expires_at'),
        ],
      }),
    );
    // The one lease row exists from the start: taking it is then a conditional UPDATE alone.
    await queryRunner.query(
      "INSERT INTO ledger_lease (name, holder, expires_at) VALUES ('sealer', '', 0)",
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.dropTable('ledger_lease');
    await queryRunner.dropTable('ledger_entries');
    await queryRunner.dropTable('ledger_blocks');
  }
}
