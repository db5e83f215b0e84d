import { parseArgs, type ParseArgsOptionsConfig } from 'node:util';

export type CliCommand =
  | { name: 'ping' }
  | { name: 'register'; username: string }
  | { name: 'login'; username: string }
  | { name: 'logout' }
  | { name: 'me' }
  | { name: 'pay'; amount: string; reference?: string; description?: string }
  | { name: 'history'; limit?: number; before?: string }
  | { name: 'ledger'; action: 'digest' };

/** Options given on the command line; what is absent falls back to the environment. */
export interface CliOptions {
  json: boolean;
  host?: string;
  port?: number;
  tlsCa?: string;
  sessionFile?: string;
  timeoutMs?: number;
}

export type ParsedArgs =
  { help: true } | { help: false; command: CliCommand; options: CliOptions };

export const USAGE = `usage: pai [options] <command>

commands:
  ping                          check that the service answers (signed, verified)
  register <user>               create an account (password read without echo, twice)
  login <user>                  log in and save the session token
  logout                        revoke the session and delete the saved token
  me                            show the account, its transaction count and total
  pay <amount> [--ref R] [--desc D]
                                record a transaction; amount as a decimal string, e.g. 12.50
  history [--limit N] [--before ID]
                                list transactions, newest first
  ledger digest                 print the ledger's latest block as one line of JSON, the file
                                \`pai-server ledger verify --digest FILE\` reads back

options:
  --host HOST        service host (env PAI_HOST, default 127.0.0.1)
  --port PORT        service port (env PAI_PORT, default 8080)
  --tls-ca FILE      connect with TLS, trusting this CA certificate (env PAI_TLS_CA)
  --session FILE     session token file (env PAI_SESSION_FILE,
                     default $XDG_STATE_HOME/pai/session.json or ~/.local/state/pai/session.json)
  --timeout MS       wait this long for each reply (default 10000)
  --json             print the result, or {"error":{"code","message"}}, as JSON on stdout
  -h, --help         show this help

The MAC key is the first entry of PAI_MAC_KEYS (or PAI_MAC_KEYS_FILE) or, when unset, the key in
PAI_DATA_DIR/dev-secrets.json (default directory: data). Passwords are read from the terminal
without echo, or as one line from standard input when it is not a terminal.`;

/** A command line that cannot be run; exit code 2, with the usage text. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

const OPTIONS = {
  host: { type: 'string' },
  port: { type: 'string' },
  'tls-ca': { type: 'string' },
  session: { type: 'string' },
  timeout: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
  ref: { type: 'string' },
  desc: { type: 'string' },
  limit: { type: 'string' },
  before: { type: 'string' },
} as const satisfies ParseArgsOptionsConfig;

type OptionName = keyof typeof OPTIONS;

/** The options each command takes besides the global ones. */
const COMMAND_OPTIONS: Record<CliCommand['name'], readonly OptionName[]> = {
  ping: [],
  register: [],
  login: [],
  logout: [],
  me: [],
  pay: ['ref', 'desc'],
  history: ['limit', 'before'],
  ledger: [],
};
const COMMAND_ONLY: ReadonlySet<OptionName> = new Set(
  Object.values(COMMAND_OPTIONS).flat(),
);

function isCommandName(name: string): name is CliCommand['name'] {
  return Object.hasOwn(COMMAND_OPTIONS, name);
}

function wholeNumber(option: string, raw: string, min: number, max: number) {
  if (!/^[0-9]{1,9}$/.test(raw) || Number(raw) < min || Number(raw) > max) {
    throw new UsageError(
      `--${option} must be a whole number from ${min} to ${max}`,
    );
  }
  return Number(raw);
}

function parseStrictly(argv: readonly string[]) {
  try {
    return parseArgs({
      args: [...argv],
      options: OPTIONS,
      allowPositionals: true,
      strict: true,
    });
  } catch (error) {
    // Unknown option, missing option value: Node's message says which.
    throw new UsageError((error as Error).message);
  }
}

/** Parses `argv` (without node and the script); throws UsageError. */
export function parseCliArgs(argv: readonly string[]): ParsedArgs {
  const { values, positionals } = parseStrictly(argv);
  if (values.help || positionals[0] === 'help') return { help: true };

  const [name, ...rest] = positionals;
  if (name === undefined) throw new UsageError('no command given');
  if (!isCommandName(name)) throw new UsageError(`unknown command "${name}"`);
  for (const option of COMMAND_ONLY) {
    if (
      values[option] !== undefined &&
      !COMMAND_OPTIONS[name].includes(option)
    ) {
      throw new UsageError(`${name} does not take --${option}`);
    }
  }
  const argument = (what: string): string => {
    if (rest.length !== 1) {
      throw new UsageError(
        `${name} takes exactly one argument, the ${what}, got ${rest.length}`,
      );
    }
    return rest[0];
  };
  const noArgument = () => {
    if (rest.length > 0) {
      throw new UsageError(`${name} takes no argument, got "${rest[0]}"`);
    }
  };

  let command: CliCommand;
  switch (name) {
    case 'register':
    case 'login':
      command = { name, username: argument('username') };
      break;
    case 'pay':
      // Kept exactly as typed: the service parses the decimal string, never a float.
      command = {
        name,
        amount: argument('amount'),
        ...(values.ref !== undefined && { reference: values.ref }),
        ...(values.desc !== undefined && { description: values.desc }),
      };
      break;
    case 'history':
      noArgument();
      command = {
        name,
        // The service owns the range (1-100) and says so; here only "a number".
        ...(values.limit !== undefined && {
          limit: wholeNumber('limit', values.limit, 0, 999_999_999),
        }),
        ...(values.before !== undefined && { before: values.before }),
      };
      break;
    case 'ledger':
      if (argument('action (digest)') !== 'digest') {
        throw new UsageError(`unknown ledger action "${rest[0]}"`);
      }
      command = { name, action: 'digest' };
      break;
    case 'ping':
    case 'logout':
    case 'me':
      noArgument();
      command = { name };
      break;
  }

  const options: CliOptions = { json: values.json ?? false };
  if (values.host !== undefined) {
    if (values.host === '') throw new UsageError('--host must not be empty');
    options.host = values.host;
  }
  if (values.port !== undefined) {
    options.port = wholeNumber('port', values.port, 1, 65535);
  }
  if (values['tls-ca'] !== undefined) options.tlsCa = values['tls-ca'];
  if (values.session !== undefined) {
    if (values.session === '')
      throw new UsageError('--session must not be empty');
    options.sessionFile = values.session;
  }
  if (values.timeout !== undefined) {
    options.timeoutMs = wholeNumber('timeout', values.timeout, 1, 3_600_000);
  }
  return { help: false, command, options };
}
