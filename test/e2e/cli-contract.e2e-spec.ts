import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EXIT_CODES } from '@pai/client/cli/exit-codes';
import {
  PAI_COMMAND,
  runCommand,
  type CliRun,
  type Env,
} from '../support/cli-runner';
import { TEST_KEYS, describeTcpOnly } from '../support/test-app';
import { databaseKind } from '../support/test-database';
import { useTestApp } from '../support/use-test-app';
import { freePort } from '../support/ports';

/** docs/cli-contract.json: the one table both command-line clients are held to. */
interface Contract {
  verbs: string[];
  exitCodes: Record<string, number>;
  cases: {
    args: string[];
    stdin?: string;
    exit: string;
    json?: string[];
  }[];
}

const ROOT = join(__dirname, '..', '..');
const PYTHON_DIR = join(ROOT, 'clients', 'python');
/** The table's exit codes of failures (all but OK). */
function failureCodes(): Record<string, number> {
  return Object.fromEntries(
    Object.entries(contract.exitCodes).filter(([name]) => name !== 'OK'),
  );
}

const contract = JSON.parse(
  readFileSync(join(ROOT, 'docs', 'cli-contract.json'), 'utf8'),
) as Contract;

const CLIS = {
  // The Node CLI from its TypeScript source, as the CLI suite runs it.
  node: { command: PAI_COMMAND, cwd: ROOT },
  // As docs/cli.md says to run it: from clients/python.
  python: { command: ['python3', '-m', 'pai_client'], cwd: PYTHON_DIR },
} as const;

function run(
  cli: keyof typeof CLIS,
  args: readonly string[],
  env: Env,
  input = '',
): Promise<CliRun> {
  const { command, cwd } = CLIS[cli];
  return runCommand(command, args, { cwd, env, input });
}

// Each Node CLI run compiles its TypeScript: a second or two each, on a busy machine.
jest.setTimeout(300_000);

describe('docs/cli-contract.json', () => {
  it("should hold the Node CLI's exit codes", () => {
    expect(contract.exitCodes.OK).toBe(0);
    expect(failureCodes()).toEqual(EXIT_CODES);
  });

  it("should hold the Python CLI's exit codes", () => {
    const python = JSON.parse(
      execFileSync(
        'python3',
        [
          '-c',
          'import json, pai_client; print(json.dumps(pai_client.EXIT_CODES))',
        ],
        { cwd: PYTHON_DIR, encoding: 'utf8' },
      ),
    ) as Record<string, number>;
    expect(python).toEqual(failureCodes());
  });

  it("should be what docs/cli.md's table of exit codes lists", () => {
    const page = readFileSync(join(ROOT, 'docs', 'cli.md'), 'utf8');
    const rows = [...page.matchAll(/^\| (\d+) \| `([A-Z_]+)` \|/gm)].map(
      ([, exit, code]) => [code, Number(exit)],
    );
    expect(Object.fromEntries(rows)).toEqual(failureCodes());
  });
});

describeTcpOnly('the command-line clients speak TCP only')(
  `both command-line clients over docs/cli-contract.json (${databaseKind})`,
  () => {
    const service = useTestApp({}, { lifetime: 'block' });

    it.each(Object.keys(CLIS) as (keyof typeof CLIS)[])(
      'should give %s CLI every case of the table',
      async (cli) => {
        const dir = mkdtempSync(join(tmpdir(), `pai-contract-${cli}-`));
        try {
          const env: Env = {
            PATH: process.env.PATH,
            HOME: dir,
            PAI_HOST: '127.0.0.1',
            PAI_PORT: String(service().port),
            PAI_MAC_KEYS: `default:${TEST_KEYS.default.toString('base64')}`,
            PAI_SESSION_FILE: join(dir, 'session.json'),
            PYTHONDONTWRITEBYTECODE: '1',
          };
          const user = `contract-${cli}-${Date.now().toString(36)}`;
          const closedPort = String(await freePort());
          const outputs: string[] = [];
          const seen: Record<string, unknown>[] = [];
          for (const entry of contract.cases) {
            const args = entry.args.map((arg) =>
              arg.replace('{user}', user).replace('{closedPort}', closedPort),
            );
            const result = await run(cli, args, env, entry.stdin);
            outputs.push(result.stdout, result.stderr);
            let document: unknown;
            if (entry.json) {
              document = JSON.parse(result.stdout);
            }
            // One comparable record per case, so that a failure shows every difference at once.
            seen.push({
              args,
              exit: result.code,
              ...(entry.json && {
                keys: Object.keys(document as object).sort(),
                ...('error' in (document as object) && {
                  error: (document as { error: { code: string } }).error.code,
                }),
              }),
              ...(entry.exit !== 'OK' &&
                !entry.json && {
                  stdout: result.stdout,
                  stderrLines: result.stderr.split('\n').length - 1,
                }),
            });
          }
          const expected = contract.cases.map((entry, index) => ({
            args: seen[index]?.args,
            exit: contract.exitCodes[entry.exit],
            ...(entry.json && {
              keys: entry.json,
              ...(entry.json.includes('error') && { error: entry.exit }),
            }),
            ...(entry.exit !== 'OK' &&
              !entry.json && { stdout: '', stderrLines: 1 }),
          }));
          expect(seen).toEqual(expected);
          // The session token never reaches the terminal: it lives in the session file only.
          expect(outputs.join('')).not.toMatch(/"token"/);
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      },
    );
  },
);
