import {
  credsAuthenticator,
  nkeyAuthenticator,
  type Authenticator,
  type JwtAuth,
} from '@nats-io/transport-node';
import { readFileSync } from 'node:fs';
import { ConfigError } from '@pai/client/config/config.error';
import { choice, envOrFile, integer, sourceOf, text } from './environment';
import { defaultOf, type Env } from './variables';
import {
  parseNatsServerList,
  type NatsCredentials,
  type NatsServerList,
} from '@pai/client/config/nats-servers';

/** The service listens on a TCP port of its own. Each field is the variable named beside it. */
export interface TcpTransport {
  readonly kind: 'tcp';
  /** PAI_HOST */
  readonly host: string;
  /** PAI_PORT */
  readonly port: number;
  /** PAI_TLS_CERT_FILE and PAI_TLS_KEY_FILE; absent: plain TCP. */
  readonly tls?: { readonly cert: Buffer; readonly key: Buffer };
  /** PAI_FRAME_TIMEOUT_MS */
  readonly frameTimeoutMs: number;
  /** PAI_IDLE_TIMEOUT_MS */
  readonly idleTimeoutMs: number;
  /** PAI_MAX_CONNECTIONS */
  readonly maxConnections: number;
  /** PAI_MAX_CONNECTIONS_PER_ADDRESS (0: no cap) */
  readonly maxConnectionsPerAddress: number;
  /** PAI_MAX_UNVERIFIED_IN_ROW */
  readonly maxUnverifiedInRow: number;
  /** PAI_AUTH_TIMEOUT_MS */
  readonly authTimeoutMs: number;
}

/** The service subscribes on a NATS broker, in a queue group its siblings share. */
export interface NatsTransport {
  readonly kind: 'nats';
  /** Server URLs without credentials: safe to log. */
  readonly servers: readonly string[];
  readonly credentials?: NatsCredentials;
  /** `tls://` URLs: the client refuses a broker that does not offer TLS. */
  readonly tls: boolean;
  /** The queue group: each request goes to exactly one instance of the group. */
  readonly queue: string;
  /** Subjects are `<subjectPrefix><pattern>`; the MAC covers the bare pattern. */
  readonly subjectPrefix: string;
  /** Replies are published only to subjects under this prefix, the requesters' inboxes. */
  readonly inboxPrefix: string;
}

/** How requests reach the service (PAI_TRANSPORT). */
export type TransportConfig = TcpTransport | NatsTransport;

// One token of a subject someone else chose: anything but a separator, a wildcard or a blank.
const LITERAL_TOKEN = /^[^\s.*>]+$/;

/**
 * Whether `subject` lies under `prefix` (dot-terminated) and is a literal subject there: the only
 * reply subjects the service publishes to.
 */
export function isUnderPrefix(subject: string, prefix: string): boolean {
  return (
    subject.startsWith(prefix) &&
    subject
      .slice(prefix.length)
      .split('.')
      .every((token) => LITERAL_TOKEN.test(token))
  );
}

function parseServers(env: Env): NatsServerList {
  const raw =
    envOrFile(env, 'PAI_NATS_SERVERS') ?? defaultOf('PAI_NATS_SERVERS');
  return parseNatsServerList(raw.split(','), sourceOf(env, 'PAI_NATS_SERVERS'));
}

const AUTH_FILE_VARIABLES = [
  'PAI_NATS_NKEY_SEED_FILE',
  'PAI_NATS_CREDS_FILE',
] as const;

/**
 * The broker credentials: from the URLs, or from one of the files. The files are read and checked
 * here, at start, so a wrong one stops the service with the variable's name instead of failing
 * the connection; their contents are never echoed.
 */
function parseCredentials(
  env: Env,
  fromUrls: NatsCredentials | undefined,
): NatsCredentials | undefined {
  if (env.PAI_NATS_NKEY_SEED) {
    // A seed in the environment is visible to anything that can read it: only a file is taken.
    throw new ConfigError(
      'PAI_NATS_NKEY_SEED',
      'is not read: put the seed in a file and set PAI_NATS_NKEY_SEED_FILE',
    );
  }
  const given = AUTH_FILE_VARIABLES.filter((name) => env[name]);
  if (given.length === 0) return fromUrls;
  const [name] = given;
  if (given.length > 1) {
    throw new ConfigError(
      name,
      'set either PAI_NATS_NKEY_SEED_FILE or PAI_NATS_CREDS_FILE, not both',
    );
  }
  if (fromUrls) {
    throw new ConfigError(
      name,
      'the PAI_NATS_SERVERS URLs carry credentials too: authenticate one way only',
    );
  }
  const contents = readAuthFile(name, env[name]!);
  if (name === 'PAI_NATS_NKEY_SEED_FILE') {
    const seed = new TextEncoder().encode(contents.trim());
    checkUserKey(name, nkeyAuthenticator(seed), 'an NKey user seed (SU…)');
    return { nkeySeed: seed };
  }
  // As written: the library's parser wants the line break after the closing delimiter.
  const bytes = new TextEncoder().encode(contents);
  checkUserKey(
    name,
    credsAuthenticator(bytes),
    'a NATS credentials file (a user JWT and its NKey seed, each between ----- lines)',
  );
  return { creds: bytes };
}

function readAuthFile(name: string, file: string): string {
  let contents: string;
  try {
    contents = readFileSync(file, 'utf8');
  } catch (error) {
    throw new ConfigError(
      name,
      `cannot read ${file} (${(error as NodeJS.ErrnoException).code ?? 'error'})`,
    );
  }
  if (contents.trim() === '') {
    throw new ConfigError(name, `${file} is empty`);
  }
  return contents;
}

/**
 * Runs the authenticator as the connection will (decoding the seed and signing a challenge), and
 * checks that it speaks for a user: the broker authenticates users, not accounts or operators.
 */
function checkUserKey(
  name: string,
  authenticator: Authenticator,
  expected: string,
): void {
  let auth: Partial<JwtAuth>;
  try {
    auth = authenticator('challenge') as Partial<JwtAuth>;
  } catch {
    // The library's message may quote the file; ours says what was expected.
    throw new ConfigError(name, `is not ${expected}`);
  }
  if (!auth.nkey?.startsWith('U') || !auth.sig) {
    throw new ConfigError(name, `is not ${expected}`);
  }
  if ('jwt' in auth && !auth.jwt) {
    throw new ConfigError(name, `is not ${expected}`);
  }
}

/** PAI_TRANSPORT and the variables of the transport it names; the others are not read. */
export function parseTransportConfig(env: Env): TransportConfig {
  return choice(env, 'PAI_TRANSPORT') === 'nats'
    ? parseNatsTransport(env)
    : parseTcpTransport(env);
}

function parseTcpTransport(env: Env): TcpTransport {
  return {
    kind: 'tcp',
    host: text(env, 'PAI_HOST'),
    port: integer(env, 'PAI_PORT'),
    tls: readTls(env),
    frameTimeoutMs: integer(env, 'PAI_FRAME_TIMEOUT_MS'),
    idleTimeoutMs: integer(env, 'PAI_IDLE_TIMEOUT_MS'),
    maxConnections: integer(env, 'PAI_MAX_CONNECTIONS'),
    maxConnectionsPerAddress: integer(env, 'PAI_MAX_CONNECTIONS_PER_ADDRESS'),
    maxUnverifiedInRow: integer(env, 'PAI_MAX_UNVERIFIED_IN_ROW'),
    authTimeoutMs: integer(env, 'PAI_AUTH_TIMEOUT_MS'),
  };
}

/** Both files or neither; read at start, so a wrong path stops the service with its name. */
function readTls(env: Env): TcpTransport['tls'] {
  const certFile = env.PAI_TLS_CERT_FILE || undefined;
  const keyFile = env.PAI_TLS_KEY_FILE || undefined;
  if (!certFile && !keyFile) return undefined;
  if (!certFile) {
    throw new ConfigError(
      'PAI_TLS_CERT_FILE',
      'must be set when PAI_TLS_KEY_FILE is',
    );
  }
  if (!keyFile) {
    throw new ConfigError(
      'PAI_TLS_KEY_FILE',
      'must be set when PAI_TLS_CERT_FILE is',
    );
  }
  const read = (name: string, file: string) => {
    try {
      return readFileSync(file);
    } catch (error) {
      throw new ConfigError(
        name,
        `cannot read ${file} (${(error as NodeJS.ErrnoException).code ?? 'error'})`,
      );
    }
  };
  return {
    cert: read('PAI_TLS_CERT_FILE', certFile),
    key: read('PAI_TLS_KEY_FILE', keyFile),
  };
}

function parseNatsTransport(env: Env): NatsTransport {
  if (env.PAI_TLS_CERT_FILE || env.PAI_TLS_KEY_FILE) {
    throw new ConfigError(
      env.PAI_TLS_CERT_FILE ? 'PAI_TLS_CERT_FILE' : 'PAI_TLS_KEY_FILE',
      'applies to PAI_TRANSPORT=tcp only; with NATS, use tls:// URLs in PAI_NATS_SERVERS',
    );
  }
  const queue = text(env, 'PAI_NATS_QUEUE');
  const subjectPrefix = text(env, 'PAI_NATS_SUBJECT_PREFIX');
  const inboxPrefix = text(env, 'PAI_NATS_INBOX_PREFIX');
  if (
    inboxPrefix.startsWith(subjectPrefix) ||
    subjectPrefix.startsWith(inboxPrefix)
  ) {
    throw new ConfigError(
      'PAI_NATS_INBOX_PREFIX',
      'must not overlap PAI_NATS_SUBJECT_PREFIX: replies would land on request subjects',
    );
  }
  const { servers, credentials: fromUrls, tls } = parseServers(env);
  const credentials = parseCredentials(env, fromUrls);
  return {
    kind: 'nats',
    servers,
    credentials,
    tls,
    queue,
    subjectPrefix,
    inboxPrefix,
  };
}

/** `host:port, host:port` for logs: the URLs are already free of credentials. */
export function describeNatsServers(transport: NatsTransport): string {
  return transport.servers.join(', ');
}
