#!/usr/bin/env node
/**
 * `pai-server`, the service package's operator command (bin/pai-server.cjs loads the compiled
 * copy): `pai-server ledger verify [--digest FILE]… [--json]`. It reads the database the service's
 * variables name, with the ledger key, and changes nothing. Exit codes: docs/ledger.md.
 */
import { readFileSync } from 'node:fs';
import { DataSource } from 'typeorm';
import { dataSourceOptions } from '../../ormconfig';
import { ConfigError } from '@pai/client/config/config.error';
import { loadVerifyConfig } from '../config/config';
import type { LedgerDigest } from '@pai/client/protocol/receipt';
import { verifyDatabase, type VerifyReport } from './verify';

export const VERIFY_EXIT = {
  CLEAN: 0,
  UNEXPECTED: 1,
  USAGE: 2,
  TAMPERED: 3,
  CONFIG: 4,
  DATABASE: 5,
} as const;

const USAGE = `usage: pai-server ledger verify [--digest FILE]... [--json]

Recomputes every ledger block from the database named by DATABASE_URL (or the SQLite file in
PAI_DATA_DIR) with PAI_LEDGER_KEY, and names the first row or block that does not match.
  --digest FILE  a digest kept earlier (\`pai ledger digest > FILE\`); the chain must still hold it
  --json         one JSON object on stdout
exit: 0 clean, 3 tampering found, 2 usage, 4 configuration, 5 database unreadable, 1 unexpected`;

class UsageError extends Error {}

interface Io {
  argv: readonly string[];
  /** Default: the process's environment. */
  env?: Record<string, string | undefined>;
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
}

function parseArgs(argv: readonly string[]): {
  digestFiles: string[];
  json: boolean;
} {
  if (argv[0] !== 'ledger' || argv[1] !== 'verify') {
    throw new UsageError(
      argv.length === 0
        ? 'no command given'
        : `unknown command "${argv.slice(0, 2).join(' ')}"`,
    );
  }
  const digestFiles: string[] = [];
  let json = false;
  for (let i = 2; i < argv.length; i += 1) {
    const arg = argv[i];
    if (arg === '--json') json = true;
    else if (arg === '--digest') {
      const file = argv[++i];
      if (file === undefined) throw new UsageError('--digest needs a file');
      digestFiles.push(file);
    } else if (arg.startsWith('--digest=')) {
      digestFiles.push(arg.slice('--digest='.length));
    } else throw new UsageError(`unknown option "${arg}"`);
  }
  return { digestFiles, json };
}

/** A digest file as `pai ledger digest` prints it; a clear error otherwise. */
export function readDigest(file: string): LedgerDigest {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    throw new UsageError(`cannot read the digest file ${file}`);
  }
  let parsed: Partial<LedgerDigest>;
  try {
    parsed = JSON.parse(text) as Partial<LedgerDigest>;
  } catch {
    throw new UsageError(`${file} is not a digest (not JSON)`);
  }
  if (
    !Number.isSafeInteger(parsed.block) ||
    (parsed.block ?? 0) < 1 ||
    typeof parsed.hash !== 'string' ||
    !/^[0-9a-f]{64}$/.test(parsed.hash) ||
    typeof parsed.sealedAt !== 'string'
  ) {
    throw new UsageError(
      `${file} is not a digest: expected {"block": n, "hash": "<64 hex>", "sealedAt": "…"}`,
    );
  }
  return { block: parsed.block!, hash: parsed.hash, sealedAt: parsed.sealedAt };
}

function summary(report: VerifyReport): string {
  const covered = `${report.blocks} blocks, ${report.sealedRows} sealed transactions, ${report.unsealedRows} not sealed yet`;
  if (report.problem)
    return `TAMPERED: ${report.problem.message} (${covered} before it)`;
  const last = report.last
    ? `; last block ${report.last.block} ${report.last.hash}`
    : '';
  return `ledger verified: ${covered}${last}`;
}

export async function runServerCli(io: Io): Promise<number> {
  let args: ReturnType<typeof parseArgs>;
  let digests: LedgerDigest[];
  try {
    if (io.argv.includes('--help') || io.argv.includes('-h')) {
      io.stdout.write(`${USAGE}\n`);
      return VERIFY_EXIT.CLEAN;
    }
    args = parseArgs(io.argv);
    digests = args.digestFiles.map(readDigest);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    io.stderr.write(`pai-server: ${error.message}\n${USAGE}\n`);
    return VERIFY_EXIT.USAGE;
  }
  let key: Buffer;
  let dataSource: DataSource;
  try {
    const { database, ledgerKey } = loadVerifyConfig(io.env);
    key = ledgerKey;
    dataSource = new DataSource({
      ...dataSourceOptions(database),
      logging: false,
    });
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    io.stderr.write(`pai-server: ${error.message}\n`);
    return VERIFY_EXIT.CONFIG;
  }
  try {
    await dataSource.initialize();
  } catch (error) {
    io.stderr.write(
      `pai-server: cannot open the database (${describe(error)})\n`,
    );
    return VERIFY_EXIT.DATABASE;
  }
  const started = Date.now();
  let lastProgress = started;
  try {
    const report = await verifyDatabase(dataSource, key, {
      digests,
      onProgress: (partial) => {
        const now = Date.now();
        if (now - lastProgress < 2_000) return;
        lastProgress = now;
        io.stderr.write(
          `ledger verify: ${partial.blocks} blocks, ${partial.sealedRows} transactions checked (${Math.round((now - started) / 1000)} s)\n`,
        );
      },
    });
    const seconds = (Date.now() - started) / 1000;
    if (args.json) {
      io.stdout.write(`${JSON.stringify({ ...report, seconds })}\n`);
    } else {
      io.stdout.write(`${summary(report)} (${seconds.toFixed(1)} s)\n`);
    }
    return report.clean ? VERIFY_EXIT.CLEAN : VERIFY_EXIT.TAMPERED;
  } catch (error) {
    io.stderr.write(
      `pai-server: cannot read the ledger (${describe(error)})\n`,
    );
    return VERIFY_EXIT.DATABASE;
  } finally {
    await dataSource.destroy().catch(() => undefined);
  }
}

/** The driver's code and a short reason, never SQL, parameters or a stack. */
function describe(error: unknown): string {
  const { code, message } = (error ?? {}) as {
    code?: unknown;
    message?: unknown;
  };
  if (
    typeof message === 'string' &&
    /no such table|doesn't exist/i.test(message)
  ) {
    return 'it has no ledger tables: start the service once on it, which runs the migrations';
  }
  return typeof code === 'string' ? code : 'unknown error';
}

if (require.main === module) {
  runServerCli({
    argv: process.argv.slice(2),
    stdout: process.stdout,
    stderr: process.stderr,
  }).then(
    (code) => process.exit(code),
    () => {
      process.stderr.write('pai-server: unexpected failure\n');
      process.exit(VERIFY_EXIT.UNEXPECTED);
    },
  );
}
