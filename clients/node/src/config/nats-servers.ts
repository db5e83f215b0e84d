import {
  credsAuthenticator,
  nkeyAuthenticator,
  type Authenticator,
} from '@nats-io/transport-node';
import { ConfigError } from './config.error';
import {
  DEFAULT_NATS_INBOX_PREFIX,
  SUBJECT_PREFIX_PATTERN,
  SUBJECT_PREFIX_RULE,
} from './defaults';

/**
 * Credentials for the NATS broker: a user and password or a token taken out of the server URLs
 * (so that the URLs can be logged), or an NKey user seed or a credentials file (user JWT and
 * seed) read from a file at start.
 */
export type NatsCredentials =
  | { readonly user: string; readonly pass: string }
  | { readonly token: string }
  | { readonly nkeySeed: Uint8Array }
  | { readonly creds: Uint8Array };

/** Refuses a prefix that is not dot-terminated tokens of [A-Za-z0-9_-] (no wildcard, no blank token). */
export function checkSubjectPrefix(
  prefix: string,
  name: string,
  examples: string,
): string {
  if (!SUBJECT_PREFIX_PATTERN.test(prefix)) {
    throw new ConfigError(
      name,
      `must be ${SUBJECT_PREFIX_RULE} such as ${examples}, got "${prefix}"`,
    );
  }
  return prefix;
}

/** Server URLs without credentials (safe to log), the credentials taken out of them, and TLS. */
export interface NatsServerList {
  readonly servers: readonly string[];
  readonly credentials?: NatsCredentials;
  /** `tls://` URLs: the client refuses a broker that does not offer TLS. */
  readonly tls: boolean;
}

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
    ...authOptions(list.credentials),
    // An empty object asks for TLS and refuses a broker that does not offer it.
    tls: list.tls ? {} : undefined,
  };
}

/** What the client module's NATS options add to the server URLs (see PaiNatsClientOptions). */
export interface NatsClientExtras {
  /** Dot-terminated; default `_INBOX.`. */
  readonly inboxPrefix?: string;
  readonly authenticator?: Authenticator;
}

/** The client module's connection options beyond the URLs': its inbox prefix and authenticator. */
export function natsClientOptions(
  list: NatsServerList,
  extras: NatsClientExtras,
): { inboxPrefix: string; authenticator?: Authenticator } {
  if (list.credentials && extras.authenticator) {
    throw new ConfigError(
      'authenticator',
      'the servers URLs carry credentials too: authenticate one way only',
    );
  }
  const inboxPrefix = checkSubjectPrefix(
    extras.inboxPrefix ?? DEFAULT_NATS_INBOX_PREFIX,
    'inboxPrefix',
    '"_INBOX." or "_INBOX.billing."',
  );
  return {
    // nats.js writes the prefix without its final dot and adds `.<unique id>`.
    inboxPrefix: inboxPrefix.slice(0, -1),
    ...(extras.authenticator && { authenticator: extras.authenticator }),
  };
}

function authOptions(
  credentials: NatsCredentials | undefined,
):
  | { user: string; pass: string }
  | { token: string }
  | { authenticator?: Authenticator } {
  if (credentials === undefined) return {};
  if ('nkeySeed' in credentials) {
    return { authenticator: nkeyAuthenticator(credentials.nkeySeed) };
  }
  if ('creds' in credentials) {
    return { authenticator: credsAuthenticator(credentials.creds) };
  }
  return credentials;
}
