import { randomBytes } from 'node:crypto';
import { ConfigError } from '../config/config.error';
import { checkClientOptions } from './client-options';

const SECRET = randomBytes(32);
const TCP = { host: '127.0.0.1', port: 8080, kid: 'default', secret: SECRET };

/** The option the error names, or undefined when the options pass. */
function refused(options: unknown): string | undefined {
  try {
    checkClientOptions(options);
    return undefined;
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as ConfigError).variable;
  }
}

describe(checkClientOptions.name, () => {
  it('should accept TCP options with a Buffer or a base64 secret, and NATS options', () => {
    expect(refused(TCP)).toBeUndefined();
    expect(
      refused({ ...TCP, secret: SECRET.toString('base64') }),
    ).toBeUndefined();
    expect(
      refused({
        transport: 'nats',
        servers: ['nats://a:4222', 'nats://b:4222'],
        subjectPrefix: 'pai.',
        kid: 'k1',
        secret: SECRET,
      }),
    ).toBeUndefined();
  });

  it.each([
    ['a missing secret', { ...TCP, secret: undefined }, 'secret'],
    ['a 3-byte secret', { ...TCP, secret: Buffer.from('abc') }, 'secret'],
    ['a short base64 secret', { ...TCP, secret: 'YWJj' }, 'secret'],
    [
      'a secret that is not base64',
      { ...TCP, secret: 'not base64!' },
      'secret',
    ],
    ['a missing kid', { ...TCP, kid: undefined }, 'kid'],
    ['a kid with a space', { ...TCP, kid: 'my key' }, 'kid'],
    ['a kid of 65 characters', { ...TCP, kid: 'k'.repeat(65) }, 'kid'],
    ['a missing host', { ...TCP, host: '' }, 'host'],
    ['port 0', { ...TCP, port: 0 }, 'port'],
    ['port 65536', { ...TCP, port: 65_536 }, 'port'],
    ['a port as text', { ...TCP, port: '8080' }, 'port'],
    ['an unknown transport', { ...TCP, transport: 'udp' }, 'transport'],
    ['timeoutMs 0', { ...TCP, timeoutMs: 0 }, 'timeoutMs'],
    [
      'negative retries',
      { ...TCP, connectionRetries: -1 },
      'connectionRetries',
    ],
    [
      'NATS without servers',
      { transport: 'nats', kid: 'k', secret: SECRET },
      'servers',
    ],
    [
      'NATS with a wildcard subject prefix',
      {
        transport: 'nats',
        servers: 'nats://a:4222',
        subjectPrefix: 'pai.>.',
        kid: 'k',
        secret: SECRET,
      },
      'subjectPrefix',
    ],
    ['no options at all', undefined, 'options'],
  ])('should refuse %s, naming the option', (_what, options, option) => {
    expect(refused(options)).toBe(option);
  });

  it('should never echo the secret', () => {
    const secret = 'c2hvcnQ=';
    try {
      checkClientOptions({ ...TCP, secret });
    } catch (error) {
      expect((error as Error).message).not.toContain(secret);
      expect((error as Error).message).toMatch(/^secret: /);
    }
    expect.assertions(2);
  });
});
