import { parseArgs, type ParseArgsOptionsConfig } from 'node:util';
import {
  AMOUNT_RULE,
  DESCRIPTION_MAX_LENGTH,
  PAGE_LIMIT_MAX,
  PAGE_LIMIT_MIN,
  REFERENCE_PATTERN,
  REFERENCE_RULE,
  TRANSACTION_ID_PATTERN,
  isPositiveAmount,
} from '../protocol/limits';

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
  /** Nest's logger writes on stderr; without it, the CLI's own one-line errors only. */
  verbose: boolean;
  host?: string;
  port?: number;
  tlsCa?: string;
  sessionFile?: string;
  timeoutMs?: number;
}

export type ParsedArgs =
  | { help: true; command?: CliCommand['name']; version?: true }
  | {
      help: false;
      command: CliCommand;
      options: CliOptions;
    };

const GLOBAL_OPTIONS = `options:
  --host HOST        service host (env PAI_HOST, default 127.0.0.1)
  --port PORT        service port (env PAI_PORT, default 8080)
  --tls-ca FILE      connect with TLS, trusting this CA certificate (env PAI_TLS_CA)
  --session FILE     session token file (env PAI_SESSION_FILE,
                     default $XDG_STATE_HOME/pai/session.json or ~/.local/state/pai/session.json)
  --timeout MS       wait this long for each reply, 1 to 3600000 (default 10000)
  --json             print the result, or {"error":{"code","message"}}, as JSON on stdout
  --verbose          show the client library's own log lines on stderr
  -h, --help         show this help (after a command: that command's help)
  -V, --version      print the version of pai`;

/** Each command's line in the usage, and its own help. */
const COMMAND_HELP: Record<
  CliCommand['name'],
  { usage: string; text: string }
> = {
  ping: {
    usage: 'ping',
    text: 'check that the service answers (signed, verified)',
  },
  register: {
    usage: 'register <user>',
    text: 'create an account (password read without echo, twice)',
  },
  login: {
    usage: 'login <user>',
    text: 'log in and save the session token',
  },
  logout: {
    usage: 'logout',
    text: 'revoke the session and delete the saved token',
  },
  me: {
    usage: 'me',
    text: 'show the account, its transaction count and total',
  },
  pay: {
    usage: 'pay <amount> [--ref R] [--desc D]',
    text: `record a transaction; amount ${AMOUNT_RULE}; --ref ${REFERENCE_RULE} (the same reference twice records once); --desc at most ${DESCRIPTION_MAX_LENGTH} characters`,
  },
  history: {
    usage: 'history [--limit N] [--before ID]',
    text: `list transactions, newest first; --limit ${PAGE_LIMIT_MIN} to ${PAGE_LIMIT_MAX} per page; --before the id the previous page named`,
  },
  ledger: {
    usage: 'ledger digest',
    text: "print the ledger's latest block as one line of JSON; keep it outside the service: `pai-server ledger verify --digest FILE` reads it back",
  },
};

export const USAGE = `usage: pai [options] <command>

commands:
${Object.values(COMMAND_HELP)
  .map(({ usage, text }) =>
    usage.length < 30
      ? `  ${usage.padEnd(30)}${text.split(';')[0]}`
      : `  ${usage}\n${' '.repeat(32)}${text.split(';')[0]}`,
  )
  .join('\n')}

${GLOBAL_OPTIONS}

The MAC key is the first entry of PAI_MAC_KEYS (or PAI_MAC_KEYS_FILE) or, when unset, the key in
PAI_DATA_DIR/dev-secrets.json (default directory: data). Passwords are read from the terminal
without echo, or as one line from standard input when it is not a terminal.
\`pai <command> --help\` shows a command's own help.`;

/** `pai <command> --help`. */
export function commandUsage(name: CliCommand['name']): string {
  const { usage, text } = COMMAND_HELP[name];
  return `usage: pai [options] ${usage}\n\n${text
    .split('; ')
    .map((part, index) => (index === 0 ? part : `  ${part}`))
    .join('\n')}\n\n${GLOBAL_OPTIONS}`;
}

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
  version: { type: 'boolean', short: 'V' },
  verbose: { type: 'boolean' },
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

function checked(
  value: string,
  test: (value: string) => boolean,
  problem: string,
): string {
  if (!test(value)) throw new UsageError(problem);
  return value;
}

function parseStrictly(argv: readonly string[]) {
  try {
    return parseArgs({
      // `pay -5`: an amount, refused as one below, not an unknown option `-5`.
      args: argv.map((arg, index) =>
        /^-[0-9.]/.test(arg) && argv[index - 1] === 'pay' ? ` ${arg}` : arg,
      ),
      options: OPTIONS,
      allowPositionals: true,
      strict: true,
    });
  } catch (error) {
    // Unknown option, missing option value: Node's message says which, and how to pass a value
    // that starts with a dash; the first sentence is what applies here.
    throw new UsageError((error as Error).message.split('. ')[0]);
  }
}

/** Parses `argv` (without node and the script); throws UsageError. */
export function parseCliArgs(argv: readonly string[]): ParsedArgs {
  const { values, positionals } = parseStrictly(argv);
  if (values.version) return { help: true, version: true };
  if (values.help || positionals[0] === 'help') {
    const about = positionals[0] === 'help' ? positionals[1] : positionals[0];
    return about !== undefined && isCommandName(about)
      ? { help: true, command: about }
      : { help: true };
  }

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
        amount: checked(
          argument('amount'),
          isPositiveAmount,
          `the amount must be ${AMOUNT_RULE}`,
        ),
        ...(values.ref !== undefined && {
          reference: checked(
            values.ref,
            (ref) => REFERENCE_PATTERN.test(ref),
            `--ref must be ${REFERENCE_RULE}`,
          ),
        }),
        ...(values.desc !== undefined && {
          description: checked(
            values.desc,
            (desc) => [...desc].length <= DESCRIPTION_MAX_LENGTH,
            `--desc must be at most ${DESCRIPTION_MAX_LENGTH} characters`,
          ),
        }),
      };
      break;
    case 'history':
      noArgument();
      command = {
        name,
        ...(values.limit !== undefined && {
          limit: wholeNumber(
            'limit',
            values.limit,
            PAGE_LIMIT_MIN,
            PAGE_LIMIT_MAX,
          ),
        }),
        ...(values.before !== undefined && {
          before: checked(
            values.before,
            (id) => TRANSACTION_ID_PATTERN.test(id),
            '--before must be a transaction id (the one a previous page named)',
          ),
        }),
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

  const options: CliOptions = {
    json: values.json ?? false,
    verbose: values.verbose ?? false,
  };
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
