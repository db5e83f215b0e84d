import { nkeyAuthenticator, nkeys } from '@nats-io/transport-node';
import { ConfigError } from '../config/config.error';
import { PaiNatsClientProxy } from './pai-nats.client';

/** The option a construction refused, or undefined when it was accepted. */
function refusedOption(
  ...args: ConstructorParameters<typeof PaiNatsClientProxy>
): string | undefined {
  try {
    new PaiNatsClientProxy(...args);
    return undefined;
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as ConfigError).variable;
  }
}

describe(PaiNatsClientProxy.name, () => {
  const authenticator = nkeyAuthenticator(nkeys.createUser().getSeed());

  it('should accept a dot-terminated inbox prefix and an authenticator', () => {
    expect(
      refusedOption('pai.', 'nats://broker:4222', {
        inboxPrefix: '_INBOX.billing.',
        authenticator,
      }),
    ).toBeUndefined();
  });

  it.each(['_INBOX', '_INBOX.>.', '_INBOX..', ''])(
    'should refuse the inbox prefix %j',
    (inboxPrefix) => {
      expect(refusedOption('pai.', 'nats://broker:4222', { inboxPrefix })).toBe(
        'inboxPrefix',
      );
    },
  );

  it('should refuse an authenticator beside credentials in the URLs, without echoing them', () => {
    let message = '';
    try {
      new PaiNatsClientProxy('pai.', 'nats://shop:hunter2@broker:4222', {
        authenticator,
      });
    } catch (error) {
      expect((error as ConfigError).variable).toBe('authenticator');
      message = (error as Error).message;
    }
    expect(message).not.toBe('');
    expect(message).not.toContain('hunter2');
  });
});
