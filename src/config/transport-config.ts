import { ConfigError } from './config.error';
import { envOrFile } from './env-file';

type Env = Record<string, string | undefined>;

/** Credentials for the NATS broker, taken out of the server URLs so that the URLs can be logged. */
export type NatsCredentials =
  { readonly user: string; readonly pass: string } | { readonly token: string };

/**
 * How requests reach the service: its own TCP port (PAI_HOST, PAI_PORT, PAI_TLS_*), or a NATS
 * broker that several instances share through one queue group.
 */
export type TransportConfig =
  | { readonly kind: 'tcp' }
  | {
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
    };

export type NatsTransport = Extract<TransportConfig, { kind: 'nats' }>;

export const DEFAULT_NATS_SERVERS = 'nats://127.0.0.1:4222';
export const DEFAULT_NATS_QUEUE = 'pai';
export const DEFAULT_NATS_SUBJECT_PREFIX = 'pai.';

// Tokens of letters, digits, `_` and `-`, each followed by a dot: no NATS wildcard (`*`, `>`) and
// no empty token, so `<prefix>>` is a valid subscription that matches only PAI's subjects.
const SUBJECT_PREFIX_PATTERN = /^(?:[A-Za-z0-9_-]+\.){1,16}$/;
const QUEUE_PATTERN = /^[A-Za-z0-9_.-]{1,128}$/;

function parseServers(env: Env): NatsServerList {
  const name = env.PAI_NATS_SERVERS_FILE
    ? 'PAI_NATS_SERVERS_FILE'
    : 'PAI_NATS_SERVERS';
  const raw = envOrFile(env, 'PAI_NATS_SERVERS') ?? DEFAULT_NATS_SERVERS;
  return parseNatsServerList(raw.split(','), name);
}

export type NatsServerList = Pick<
  NatsTransport,
  'servers' | 'credentials' | 'tls'
>;

/**
 * `nats://[user:pass@|token@]host:port` or `tls://…` URLs, as the service and the client module
 * take them: the credentials are taken out (nats.js ignores them in a URL) and never echoed.
 */
export function parseNatsServerList(
  urls: readonly string[],
  name: string,
): NatsServerList {
  const servers: string[] = [];
  const schemes = new Set<string>();
  const identities = new Set<string>();
  let credentials: NatsCredentials | undefined;
  for (const [index, entry] of urls.entries()) {
    const item = entry.trim();
    let url: URL;
    try {
      url = new URL(item);
    } catch {
      // The entry may hold a password: never echo it.
      throw new ConfigError(
        name,
        `entry ${index + 1} is not a URL (expected nats://host:port or tls://host:port)`,
      );
    }
    if (url.protocol !== 'nats:' && url.protocol !== 'tls:') {
      throw new ConfigError(
        name,
        `entry ${index + 1}: scheme must be nats:// or tls://, not ${url.protocol}//`,
      );
    }
    if (url.hostname === '' || (url.pathname !== '' && url.pathname !== '/')) {
      throw new ConfigError(
        name,
        `entry ${index + 1} must be scheme://host:port and nothing more`,
      );
    }
    schemes.add(url.protocol);
    const user = decodeURIComponent(url.username);
    const pass = decodeURIComponent(url.password);
    identities.add(JSON.stringify([user, pass]));
    if (user && pass) credentials = { user, pass };
    else if (user) credentials = { token: user };
    servers.push(`${url.protocol}//${url.host}`);
  }
  if (servers.length === 0) {
    throw new ConfigError(name, 'must name at least one server');
  }
  // The client takes one set of credentials and one TLS setting for every server it may reconnect to.
  if (identities.size > 1) {
    throw new ConfigError(
      name,
      'every URL must carry the same credentials (or none)',
    );
  }
  if (schemes.size > 1) {
    throw new ConfigError(name, 'mixes nats:// and tls:// URLs');
  }
  return { servers, credentials, tls: schemes.has('tls:') };
}

/** The connection options nats.js takes for a parsed server list. */
export function natsConnectionOptions(list: NatsServerList) {
  return {
    servers: [...list.servers],
    ...list.credentials,
    // An empty object asks for TLS and refuses a broker that does not offer it.
    tls: list.tls ? {} : undefined,
  };
}

export function parseTransportConfig(env: Env): TransportConfig {
  const kind = env.PAI_TRANSPORT || 'tcp';
  if (kind === 'tcp') return { kind };
  if (kind !== 'nats') {
    throw new ConfigError(
      'PAI_TRANSPORT',
      `must be "tcp" or "nats", got "${kind}"`,
    );
  }
  const queue = env.PAI_NATS_QUEUE || DEFAULT_NATS_QUEUE;
  if (!QUEUE_PATTERN.test(queue)) {
    throw new ConfigError(
      'PAI_NATS_QUEUE',
      `must be 1-128 characters of [A-Za-z0-9_.-], got "${queue}"`,
    );
  }
  const subjectPrefix =
    env.PAI_NATS_SUBJECT_PREFIX || DEFAULT_NATS_SUBJECT_PREFIX;
  if (!SUBJECT_PREFIX_PATTERN.test(subjectPrefix)) {
    throw new ConfigError(
      'PAI_NATS_SUBJECT_PREFIX',
      `must be dot-terminated tokens of [A-Za-z0-9_-] such as "pai." or "prod.pai.", got "${subjectPrefix}"`,
    );
  }
  return { kind, ...parseServers(env), queue, subjectPrefix };
}

/** `host:port, host:port` for logs: the URLs are already free of credentials. */
export function describeNatsServers(transport: NatsTransport): string {
  return transport.servers.join(', ');
}
