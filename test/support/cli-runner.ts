import { spawn } from 'node:child_process';
import { join, resolve } from 'node:path';

export type Env = Record<string, string | undefined>;

const ROOT = resolve(__dirname, '..', '..');

/**
 * The real `pai` program, run from its TypeScript source (ts-node, transpile only), so that the
 * suite tests the code as it is now and needs no build: a fresh `npm install && npm test`
 * passes, and a stale dist/ cannot make it pass. clients/node/bin/pai.cjs only loads the compiled copy.
 */
export const PAI_COMMAND: readonly string[] = [
  process.execPath,
  '--conditions=pai-source',
  '-r',
  'ts-node/register/transpile-only',
  join(ROOT, 'clients', 'node', 'src', 'cli', 'main.ts'),
];

export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `command args…` in `cwd` with only `env` in its environment and `input` on a piped stdin. */
export function runCommand(
  command: readonly string[],
  args: readonly string[],
  { cwd, env, input = '' }: { cwd: string; env: Env; input?: string },
): Promise<CliRun> {
  return new Promise((done, fail) => {
    const child = spawn(command[0], [...command.slice(1), ...args], {
      cwd,
      env,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (text: string) => {
      stdout += text;
    });
    child.stderr.setEncoding('utf8').on('data', (text: string) => {
      stderr += text;
    });
    child.on('error', fail);
    child.on('close', (code) => done({ code, stdout, stderr }));
    child.stdin.end(input);
  });
}

/** Runs `pai args…` with only `env` in its environment and `input` on a piped stdin. */
export function runPai(
  args: readonly string[],
  env: Env,
  input = '',
): Promise<CliRun> {
  return runCommand(PAI_COMMAND, args, { cwd: ROOT, env, input });
}

export interface TerminalRun {
  status: number;
  /** Everything the terminal displayed: what the program wrote and what the terminal echoed. */
  output: string;
  /** The terminal's ECHO flag once the program had ended. */
  echo: boolean | null;
  timedOut: boolean;
}

export interface Keystrokes {
  /** Wait until the terminal shows this… */
  expect: string;
  /** …then type this (`\r` is Enter, `\x7f` Backspace, `\x03` Ctrl-C). */
  send: string;
}

/**
 * Runs `pai args…` on a pseudo-terminal driven by test/support/pty-run.py (Python's pty module:
 * no native addon), typing `keys` as the prompts appear.
 */
export function runPaiOnTerminal(
  args: readonly string[],
  env: Env,
  keys: readonly Keystrokes[],
): Promise<TerminalRun> {
  const command = [
    'env',
    '-i',
    ...Object.entries(env)
      .filter(([, value]) => value !== undefined)
      .map(([name, value]) => `${name}=${value}`),
    ...PAI_COMMAND,
    ...args,
  ];
  return new Promise((done, fail) => {
    const child = spawn(
      'python3',
      [join(__dirname, 'pty-run.py'), JSON.stringify(keys), ...command],
      { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (text: string) => {
      stdout += text;
    });
    child.stderr.setEncoding('utf8').on('data', (text: string) => {
      stderr += text;
    });
    child.on('error', fail);
    child.on('close', (code) => {
      if (code !== 0) {
        fail(new Error(`pty-run.py failed (${code}): ${stderr}`));
        return;
      }
      done(JSON.parse(stdout) as TerminalRun);
    });
  });
}
