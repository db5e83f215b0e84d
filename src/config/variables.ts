import {
  DEFAULT_DATA_DIR,
  DEFAULT_HOST,
  DEFAULT_NATS_INBOX_PREFIX,
  DEFAULT_PORT,
  SUBJECT_PREFIX_PATTERN,
  SUBJECT_PREFIX_RULE,
} from '@pai/client/config/defaults';

/**
 * Every environment variable the service reads, described once: `loadConfig` parses the simple
 * kinds from this table (environment.ts), the composite rules cite it, `docs/configuration.md` is
 * generated from it (`npm run docs:config`), and the test configurations start from its defaults.
 */

/** The form a value takes. Integers, choices, texts and the switch are parsed from here alone. */
export type Kind =
  | { readonly type: 'integer'; readonly min: number; readonly max: number }
  | { readonly type: 'choice'; readonly values: readonly string[] }
  | {
      readonly type: 'text';
      readonly pattern: RegExp;
      /** What the pattern accepts, in words: the error message and the docs both say it. */
      readonly rule: string;
      /** Set but empty is a value of its own (no prefix), not "unset". */
      readonly keepsEmpty?: true;
    }
  /** Only one value changes anything. */
  | { readonly type: 'switch'; readonly on: string }
  // The kinds below have rules of their own (a pair, a list, a URL with credentials): a dedicated
  // function parses each, and `form` describes the value for the docs.
  | { readonly type: 'url'; readonly form: string }
  | { readonly type: 'secret'; readonly form: string }
  | { readonly type: 'file'; readonly form: string }
  | { readonly type: 'directory' }
  /** Looked at only to be refused, with what to set instead. */
  | { readonly type: 'refused'; readonly instead: string };

/** When a variable is read at all; the docs group the table by it. */
export const APPLIES = {
  always: 'Every deployment',
  tcp: 'Over TCP (`PAI_TRANSPORT=tcp`, the default)',
  nats: 'Over NATS (`PAI_TRANSPORT=nats`)',
  mysql: 'On MySQL or MariaDB (`DATABASE_URL` set)',
  redis: 'With the Redis nonce record (`PAI_NONCE_STORE=redis`)',
  http: 'With the HTTP side port (`PAI_HTTP_PORT` set)',
} as const;

export interface Variable {
  readonly kind: Kind;
  readonly applies: keyof typeof APPLIES;
  /** The value when unset (or empty), for the kinds parsed from the table. */
  readonly default?: number | string;
  /** What unset means when that is more than a default value (docs only). */
  readonly unset?: string;
  /** Never echoed in an error message, never logged. */
  readonly secret?: true;
  /** Also read from the file `<name>_FILE` names, the way Docker and Compose hand secrets over. */
  readonly file?: true;
  readonly meaning: string;
}

const integer = (min: number, max: number) =>
  ({ type: 'integer', min, max }) as const;

const HOST = {
  type: 'text',
  pattern: /^[A-Za-z0-9.:_-]{1,253}$/,
  rule: 'a host name or address',
} as const;

export { SUBJECT_PREFIX_PATTERN, SUBJECT_PREFIX_RULE };

export const LOG_LEVELS = [
  'fatal',
  'error',
  'warn',
  'info',
  'debug',
  'trace',
  'silent',
] as const;

export const VARIABLES = {
  NODE_ENV: {
    kind: { type: 'switch', on: 'production' },
    unset: 'development',
    applies: 'always',
    meaning:
      '`production` refuses to start without `PAI_MAC_KEYS`, `PAI_PASSWORD_PEPPER` and `PAI_LEDGER_KEY`, whatever else is configured',
  },
  PAI_TRANSPORT: {
    kind: { type: 'choice', values: ['tcp', 'nats'] },
    default: 'tcp',
    applies: 'always',
    meaning:
      '`tcp`: the service listens on `PAI_HOST:PAI_PORT`; `nats`: it subscribes on a NATS broker, in a queue group with its siblings (see [nats.md](nats.md))',
  },
  DATABASE_URL: {
    kind: {
      type: 'url',
      form: '`mysql://user:pass@host:port/db` or `mariadb://…`',
    },
    unset: 'the SQLite file `pai.sqlite` in `PAI_DATA_DIR`',
    secret: true,
    file: true,
    applies: 'always',
    meaning: 'the MySQL or MariaDB database; migrations run at start',
  },
  PAI_DATA_DIR: {
    kind: { type: 'directory' },
    default: DEFAULT_DATA_DIR,
    applies: 'always',
    meaning:
      'where the SQLite file and the generated development secrets live; created 0700, the database file (and its `-wal`, `-shm`) 0600, a file found readable by others made 0600',
  },
  PAI_MAC_KEYS: {
    kind: {
      type: 'secret',
      form: '`kid:secret[,kid:secret…]`: key ids of 1-64 `[A-Za-z0-9._-]`, secrets base64 of at least 32 bytes',
    },
    unset:
      'with nothing configured (no `DATABASE_URL`, TCP, none of this, `PAI_PASSWORD_PEPPER` and `PAI_LEDGER_KEY`, outside production): generated once into `PAI_DATA_DIR/dev-secrets.json`; otherwise required',
    secret: true,
    file: true,
    applies: 'always',
    meaning:
      'the keys that sign requests and replies; several rotate without downtime (add the new `kid`, move the clients to it, remove the old one)',
  },
  PAI_PASSWORD_PEPPER: {
    kind: { type: 'secret', form: 'base64 of at least 32 bytes' },
    unset:
      'as `PAI_MAC_KEYS`: one of the three secrets given without the others is refused, naming a missing one',
    secret: true,
    file: true,
    applies: 'always',
    meaning: 'mixed into every password hash, kept outside the database',
  },
  PAI_LEDGER_KEY: {
    kind: { type: 'secret', form: 'base64 of at least 32 bytes' },
    unset:
      'as `PAI_MAC_KEYS`: required whenever either of the other two secrets is given',
    secret: true,
    file: true,
    applies: 'always',
    meaning:
      'seals every ledger block (an HMAC over its hash), kept outside the database: without it, write access to the database cannot forge a history that `pai-server ledger verify` accepts (see [ledger.md](ledger.md))',
  },
  PAI_LEDGER_SETTLE_MS: {
    kind: integer(0, 3_600_000),
    default: 10_000,
    applies: 'always',
    meaning:
      'a transaction is sealed once it is this old by the database clock, and never past a younger one: longer than any insert takes to commit (at least `PAI_DATABASE_TIMEOUT_MS`) plus the clock skew between instances and database',
  },
  PAI_LEDGER_SEAL_INTERVAL_MS: {
    kind: integer(0, 3_600_000),
    default: 1_000,
    applies: 'always',
    meaning:
      'how often this instance tries to take the sealer lease and seal what has settled; `0`: this instance never seals (another instance on the database must)',
  },
  PAI_MAC_WINDOW_MS: {
    kind: integer(1_000, 86_400_000),
    default: 300_000,
    applies: 'always',
    meaning:
      'freshness window: a request dated further from the service clock is refused',
  },
  PAI_SESSION_TTL_MS: {
    kind: integer(1_000, 2_592_000_000),
    default: 3_600_000,
    applies: 'always',
    meaning: 'session lifetime',
  },
  PAI_BCRYPT_COST: {
    kind: integer(10, 20),
    default: 12,
    applies: 'always',
    meaning:
      "bcrypt cost; a stored hash of another cost is re-hashed at its user's next login",
  },
  PAI_MAX_MESSAGE_BYTES: {
    kind: integer(1_024, 16_777_216),
    default: 65_536,
    applies: 'always',
    meaning:
      "largest request: a TCP frame as Nest's length prefix declares it (UTF-16 units), a NATS message in bytes",
  },
  PAI_DRAIN_TIMEOUT_MS: {
    kind: integer(0, 300_000),
    default: 10_000,
    applies: 'always',
    meaning:
      'on SIGTERM or SIGINT, how long requests in flight get to finish and reply',
  },
  PAI_DATABASE_TIMEOUT_MS: {
    kind: integer(100, 120_000),
    default: 5_000,
    applies: 'always',
    meaning:
      'a database (or Redis) call that has not finished by then answers `UNAVAILABLE` instead of hanging',
  },
  PAI_NONCE_STORE: {
    kind: { type: 'choice', values: ['memory', 'database', 'redis'] },
    unset: '`memory` on SQLite over TCP, `database` on MySQL or over NATS',
    applies: 'always',
    meaning:
      'where accepted nonces are kept: `memory` (this process only: one instance), `database` (shared by every instance on the database) or `redis` (shared by every instance on one Redis; see [redis-nonce-record.md](redis-nonce-record.md)); `memory` is refused over NATS',
  },
  PAI_HTTP_PORT: {
    kind: integer(0, 65_535),
    unset: 'no HTTP listener (the container image sets `9090`)',
    applies: 'always',
    meaning:
      'the HTTP side port for `/health/live`, `/health/ready` and `/metrics`; `0` picks a free port; must differ from `PAI_PORT`',
  },
  PAI_LOG_LEVEL: {
    kind: { type: 'choice', values: LOG_LEVELS },
    default: 'info',
    applies: 'always',
    meaning: 'the least severe level written',
  },
  PAI_LOG_FORMAT: {
    kind: { type: 'choice', values: ['auto', 'json', 'pretty'] },
    default: 'auto',
    applies: 'always',
    meaning:
      '`json`: one object a line; `pretty`: for people (needs the development dependency `pino-pretty`); `auto`: pretty when stdout is a terminal outside production and `pino-pretty` is installed, else JSON',
  },

  PAI_HOST: {
    kind: HOST,
    default: DEFAULT_HOST,
    applies: 'tcp',
    meaning: 'the listen address',
  },
  PAI_PORT: {
    kind: integer(0, 65_535),
    default: DEFAULT_PORT,
    applies: 'tcp',
    meaning:
      'the listen port; `0` picks a free port (tests); the bound port is logged',
  },
  PAI_TLS_CERT_FILE: {
    kind: { type: 'file', form: 'a PEM certificate (chain)' },
    unset: 'plain TCP',
    applies: 'tcp',
    meaning:
      'with `PAI_TLS_KEY_FILE` (both or neither): the port speaks TLS only; refused over NATS, where `tls://` URLs do that',
  },
  PAI_TLS_KEY_FILE: {
    kind: { type: 'file', form: 'a PEM private key' },
    unset: 'plain TCP',
    applies: 'tcp',
    meaning: "the certificate's private key",
  },
  PAI_FRAME_TIMEOUT_MS: {
    kind: integer(100, 600_000),
    default: 5_000,
    applies: 'tcp',
    meaning:
      'a frame must arrive whole within this time of its first character: slow senders are cut off',
  },
  PAI_IDLE_TIMEOUT_MS: {
    kind: integer(1_000, 86_400_000),
    default: 300_000,
    applies: 'tcp',
    meaning: 'a connection with no traffic either way for this long is closed',
  },
  PAI_MAX_CONNECTIONS: {
    kind: integer(1, 1_000_000),
    default: 1_000,
    applies: 'tcp',
    meaning:
      'connections beyond this many are refused at accept, so a flood cannot starve the open ones',
  },
  PAI_MAX_CONNECTIONS_PER_ADDRESS: {
    kind: integer(0, 1_000_000),
    default: 100,
    applies: 'tcp',
    meaning:
      'connections one client address may hold at once; `0` turns the cap off (behind a balancer every connection comes from its address, and the balancer caps per client)',
  },
  PAI_MAX_UNVERIFIED_IN_ROW: {
    kind: integer(1, 1_000),
    default: 3,
    applies: 'tcp',
    meaning:
      'a connection whose requests fail checks 1-3 (form, key, MAC) this many times in a row is closed after the last refusal',
  },
  PAI_AUTH_TIMEOUT_MS: {
    kind: integer(100, 600_000),
    default: 5_000,
    applies: 'tcp',
    meaning:
      'a connection with no authenticated request this long after opening is closed',
  },

  PAI_NATS_SERVERS: {
    kind: {
      type: 'url',
      form: 'comma-separated `nats://` or `tls://` URLs (not both), optionally with `user:pass@` or `token@`, the same on every URL',
    },
    default: 'nats://127.0.0.1:4222',
    secret: true,
    file: true,
    applies: 'nats',
    meaning:
      'the broker; credentials are taken out of the URLs, which are then logged; `tls://` refuses a broker without TLS',
  },
  PAI_NATS_QUEUE: {
    kind: {
      type: 'text',
      pattern: /^[A-Za-z0-9_.-]{1,128}$/,
      rule: '1-128 characters of [A-Za-z0-9_.-]',
    },
    default: 'pai',
    applies: 'nats',
    meaning: 'the queue group: each request goes to one instance of the group',
  },
  PAI_NATS_SUBJECT_PREFIX: {
    kind: {
      type: 'text',
      pattern: SUBJECT_PREFIX_PATTERN,
      rule: `${SUBJECT_PREFIX_RULE} such as "pai." or "prod.pai."`,
    },
    default: 'pai.',
    applies: 'nats',
    meaning:
      'subjects are `<prefix><pattern>`; the MAC covers the bare pattern',
  },
  PAI_NATS_INBOX_PREFIX: {
    kind: {
      type: 'text',
      pattern: SUBJECT_PREFIX_PATTERN,
      rule: `${SUBJECT_PREFIX_RULE} such as "_INBOX." or "_INBOX.pai."`,
    },
    default: DEFAULT_NATS_INBOX_PREFIX,
    applies: 'nats',
    meaning:
      "replies are published only to reply subjects under it (the requesters' inboxes); it must not overlap the subject prefix",
  },
  PAI_NATS_NKEY_SEED_FILE: {
    kind: { type: 'file', form: 'an NKey user seed (`SU…`)' },
    unset: 'credentials from the URLs, if any',
    applies: 'nats',
    meaning:
      "the service's NKey, instead of credentials in the URLs; checked at start (see [nats.md](nats.md))",
  },
  PAI_NATS_CREDS_FILE: {
    kind: {
      type: 'file',
      form: 'NATS credentials (a user JWT and its NKey seed)',
    },
    unset: 'credentials from the URLs, if any',
    applies: 'nats',
    meaning:
      'instead of credentials in the URLs or `PAI_NATS_NKEY_SEED_FILE`; checked at start',
  },
  PAI_NATS_NKEY_SEED: {
    kind: { type: 'refused', instead: 'PAI_NATS_NKEY_SEED_FILE' },
    secret: true,
    applies: 'nats',
    meaning:
      'refused: a seed in the environment is visible to anything that can read it; only a file is taken',
  },

  PAI_DB_POOL_SIZE: {
    kind: integer(1, 1_000),
    default: 10,
    applies: 'mysql',
    meaning:
      'MySQL connections at most: concurrent statements, and commits the server can group',
  },

  PAI_REDIS_URL: {
    kind: {
      type: 'url',
      form: '`redis://[:password@]host:port/db` or `rediss://…`',
    },
    unset: 'none: required with `PAI_NONCE_STORE=redis`',
    secret: true,
    file: true,
    applies: 'redis',
    meaning: 'the Redis that keeps the nonce record; never logged',
  },
  PAI_REDIS_PREFIX: {
    kind: {
      type: 'text',
      pattern: /^[A-Za-z0-9._:{}-]{0,64}$/,
      rule: 'at most 64 characters of [A-Za-z0-9._:{}-]',
      keepsEmpty: true,
    },
    default: 'pai:',
    applies: 'redis',
    meaning:
      'prefix of every key PAI writes, so deployments can share one Redis; set empty for none',
  },

  PAI_HTTP_HOST: {
    kind: HOST,
    default: '127.0.0.1',
    applies: 'http',
    meaning:
      "the side port's listen address (the container image: `0.0.0.0`); set alone, it does not turn the port on",
  },
} as const satisfies Record<string, Variable>;

export type Env = Record<string, string | undefined>;
export type VariableName = keyof typeof VARIABLES;
type Table = typeof VARIABLES;

/** The variables of one kind, for the typed readers. */
export type NamesOf<T extends Kind['type']> = {
  [N in VariableName]: Table[N]['kind']['type'] extends T ? N : never;
}[VariableName];

/** The variables with a default value. */
export type Defaulted = {
  [N in VariableName]: Table[N] extends { default: unknown } ? N : never;
}[VariableName];

/** The values a choice variable takes. */
export type ChoiceOf<N extends NamesOf<'choice'>> = Table[N]['kind'] extends {
  values: readonly (infer V)[];
}
  ? V
  : never;

/** The variables that may be given as `<name>_FILE`. */
export type FileVariable = {
  [N in VariableName]: Table[N] extends { file: true } ? N : never;
}[VariableName];

/** The default of a variable, as the table gives it. */
export function defaultOf<N extends Defaulted>(name: N): Table[N]['default'] {
  return VARIABLES[name].default;
}
