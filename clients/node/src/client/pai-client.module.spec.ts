import { nkeyAuthenticator, nkeys } from '@nats-io/transport-node';
import { randomBytes } from 'node:crypto';
import { ConfigError } from '../config/config.error';
import {
  createPaiClient,
  type PaiNatsClientOptions,
} from './pai-client.module';

/** The error creating a NATS client threw, or undefined when it was created (and closed). */
function creationError(
  options: Partial<PaiNatsClientOptions>,
): ConfigError | undefined {
  try {
    void createPaiClient({
      transport: 'nats',
      servers: 'nats://broker:4222',
      kid: 'default',
      secret: randomBytes(32),
      ...options,
    }).close();
    return undefined;
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return error as ConfigError;
  }
}

describe(createPaiClient.name, () => {
  describe('over NATS', () => {
    const authenticator = nkeyAuthenticator(nkeys.createUser().getSeed());

    it('should accept a dot-terminated inbox prefix and an authenticator', () => {
      expect(
        creationError({ inboxPrefix: '_INBOX.billing.', authenticator }),
      ).toBeUndefined();
    });

    it.each(['_INBOX', '_INBOX.>.', '_INBOX..', ''])(
      'should refuse the inbox prefix %j',
      (inboxPrefix) => {
        expect(creationError({ inboxPrefix })?.variable).toBe('inboxPrefix');
      },
    );

    it('should refuse an authenticator beside credentials in the URLs, without echoing them', () => {
      const error = creationError({
        servers: 'nats://shop:hunter2@broker:4222',
        authenticator,
      });
      expect(error?.variable).toBe('authenticator');
      expect(error?.message).not.toContain('hunter2');
    });
  });
});
