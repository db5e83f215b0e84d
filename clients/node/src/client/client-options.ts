import { ConfigError } from '../config/config.error';
import {
  KID_PATTERN,
  MIN_SECRET_BYTES,
  decodeSecret,
} from '../config/mac-keys';
import { checkSubjectPrefix } from '../config/nats-servers';

/** The fields every client options object has, whatever its transport. */
interface CommonOptions {
  transport?: unknown;
  kid?: unknown;
  secret?: unknown;
  timeoutMs?: unknown;
  connectionRetries?: unknown;
  connectionRetryDelayMs?: unknown;
  host?: unknown;
  port?: unknown;
  servers?: unknown;
  subjectPrefix?: unknown;
}

function wholeNumber(
  name: string,
  value: unknown,
  min: number,
  max: number,
): void {
  if (
    typeof value !== 'number' ||
    !Number.isInteger(value) ||
    value < min ||
    value > max
  ) {
    throw new ConfigError(
      name,
      `must be a whole number from ${min} to ${max}, got ${typeof value === 'number' ? value : typeof value}`,
    );
  }
}

/**
 * Checks the client's options when they are given (PaiClientModule.register, createPaiClient, the
 * factory of registerAsync), so that a wrong one stops the application's start naming the option,
 * instead of failing every call later. The secret's value is never echoed.
 */
export function checkClientOptions(options: unknown): void {
  if (typeof options !== 'object' || options === null) {
    throw new ConfigError('options', 'must be an object');
  }
  const given = options as CommonOptions;
  if (
    given.transport !== undefined &&
    given.transport !== 'tcp' &&
    given.transport !== 'nats'
  ) {
    throw new ConfigError(
      'transport',
      `must be "tcp" (the default) or "nats", got ${JSON.stringify(given.transport)}`,
    );
  }
  if (typeof given.kid !== 'string' || !KID_PATTERN.test(given.kid)) {
    throw new ConfigError(
      'kid',
      'must be the key id the service knows the secret under: 1-64 characters of [A-Za-z0-9._-]',
    );
  }
  if (typeof given.secret === 'string') {
    decodeSecret('secret', given.secret, 'the secret');
  } else if (Buffer.isBuffer(given.secret)) {
    if (given.secret.length < MIN_SECRET_BYTES) {
      throw new ConfigError(
        'secret',
        `must be at least ${MIN_SECRET_BYTES} bytes, got ${given.secret.length}`,
      );
    }
  } else {
    throw new ConfigError(
      'secret',
      `is required: base64 of at least ${MIN_SECRET_BYTES} bytes (as in PAI_MAC_KEYS), or a Buffer`,
    );
  }
  if (given.timeoutMs !== undefined) {
    wholeNumber('timeoutMs', given.timeoutMs, 1, 3_600_000);
  }
  if (given.connectionRetries !== undefined) {
    wholeNumber('connectionRetries', given.connectionRetries, 0, 100);
  }
  if (given.connectionRetryDelayMs !== undefined) {
    wholeNumber(
      'connectionRetryDelayMs',
      given.connectionRetryDelayMs,
      0,
      60_000,
    );
  }
  if (given.transport === 'nats') {
    const servers = given.servers;
    if (
      !(typeof servers === 'string' && servers !== '') &&
      !(
        Array.isArray(servers) &&
        servers.length > 0 &&
        servers.every((s) => typeof s === 'string')
      )
    ) {
      throw new ConfigError(
        'servers',
        'is required: a nats:// or tls:// URL, or a list of them',
      );
    }
    if (given.subjectPrefix !== undefined) {
      if (typeof given.subjectPrefix !== 'string') {
        throw new ConfigError(
          'subjectPrefix',
          'must be a string such as "pai."',
        );
      }
      checkSubjectPrefix(
        given.subjectPrefix,
        'subjectPrefix',
        '"pai." or "pai.billing."',
      );
    }
    return;
  }
  if (typeof given.host !== 'string' || given.host === '') {
    throw new ConfigError(
      'host',
      'is required: the service host name or address',
    );
  }
  wholeNumber('port', given.port, 1, 65_535);
}
