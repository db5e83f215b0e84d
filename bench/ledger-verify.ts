// Verify's time for a million rows (docs/performance.md, "The ledger"):
//   node --import tsx bench/ledger-verify.ts [--mariadb] [--rows=N]
// A scratch database (SQLite in a temporary directory, or a `pai_bench_…` database on the
// machine's MariaDB, dropped afterwards), N rows written with one raw INSERT … SELECT, sealed by
// the service's own sealer as at a first start after the upgrade, then verified whole.
import { randomBytes } from 'node:crypto';
import { DataSource } from 'typeorm';
import { dataSourceOptions } from '../ormconfig';
import { Database } from '../src/database/database.service';
import { runMigrationsExclusively } from '../src/database/migrate';
import { Sealer } from '../src/ledger/sealer';
import { verifyDatabase } from '../src/ledger/verify';
import type { AppConfig } from '../src/config/config';
import { createTestDatabase } from '../test/support/test-database';

const mariadb = process.argv.includes('--mariadb');
const rowsArg = process.argv.find((arg) => arg.startsWith('--rows='));
const ROWS = rowsArg ? Number(rowsArg.slice('--rows='.length)) : 1_000_000;
const key = randomBytes(32);

async function main(): Promise<void> {
  const scratch = await createTestDatabase({
    serverUrl: mariadb ? 'mysql://root@127.0.0.1:3306/' : '',
    namePrefix: 'pai_bench_',
  });
  const dataSource = await new DataSource({
    ...dataSourceOptions(scratch.config),
    logging: false,
  }).initialize();
  try {
    await runMigrationsExclusively(dataSource);
    await dataSource.query(
      "INSERT INTO usuarios (id, nombre_usuario, nombre_usuario_normalizado, clave, creado_en) VALUES (1, 'bench', 'bench', 'x', '2026-01-01 00:00:00.000')",
    );
    let started = performance.now();
    if (mariadb) {
      await dataSource.query(
        `INSERT INTO transacciones (usuario_id, cantidad, referencia, descripcion, creado_en)
         SELECT 1, CONCAT(seq % 100000, '.', LPAD(seq % 100, 2, '0')), NULL, CONCAT('bench ', seq), '2026-01-01 00:00:00.000'
         FROM seq_1_to_${ROWS}`,
      );
    } else {
      await dataSource.query(
        `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ${ROWS})
         INSERT INTO transacciones (usuario_id, cantidad, referencia, descripcion, creado_en)
         SELECT 1, printf('%d.%02d', i % 100000, i % 100), NULL, 'bench ' || i, '2026-01-01 00:00:00.000' FROM n`,
      );
    }
    console.log(
      `${ROWS} rows written in ${((performance.now() - started) / 1000).toFixed(1)} s`,
    );

    const config = {
      ledgerKey: key,
      ledger: { settleMs: 0, sealIntervalMs: 1_000 },
    } as AppConfig;
    const database = new Database(dataSource, { databaseTimeoutMs: 120_000 });
    const sealer = new Sealer(database, config);
    started = performance.now();
    let sealed = 0;
    for (;;) {
      const rows = await sealer.sealBlock();
      if (rows === 0) break;
      sealed += rows;
    }
    console.log(
      `${sealed} rows sealed in ${((performance.now() - started) / 1000).toFixed(1)} s`,
    );

    started = performance.now();
    const report = await verifyDatabase(dataSource, key);
    const seconds = (performance.now() - started) / 1000;
    console.log(
      `verify: ${report.clean ? 'clean' : 'TAMPERED'}, ${report.blocks} blocks, ${report.sealedRows} rows in ${seconds.toFixed(1)} s (${Math.round(report.sealedRows / seconds)} rows/s)`,
    );
  } finally {
    await dataSource.destroy();
    await scratch.drop();
  }
}

void main();
