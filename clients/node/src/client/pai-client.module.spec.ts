import { nkeyAuthenticator, nkeys } from '@nats-io/transport-node';
import { randomBytes } from 'node:crypto';
import { Injectable, Module } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { ConfigError } from '../config/config.error';
import { PaiClient } from './pai-client';
import {
  createPaiClient,
  PaiClientModule,
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

/** Stands for the application's own configuration service that registerAsync's factory reads. */
@Injectable()
class Settings {
  secret = randomBytes(32).toString('base64');
}

@Module({ providers: [Settings], exports: [Settings] })
class SettingsModule {}

describe(PaiClientModule.name, () => {
  describe(PaiClientModule.register.name, () => {
    it('should provide a PaiClient', async () => {
      const app = await Test.createTestingModule({
        imports: [
          PaiClientModule.register({
            host: '127.0.0.1',
            port: 8080,
            kid: 'default',
            secret: randomBytes(32),
          }),
        ],
      }).compile();
      expect(app.get(PaiClient)).toBeInstanceOf(PaiClient);
      await app.close();
    });

    it('should refuse a 3-byte secret at registration, naming the option', () => {
      expect(() =>
        PaiClientModule.register({
          host: '127.0.0.1',
          port: 8080,
          kid: 'default',
          secret: Buffer.from('abc'),
        }),
      ).toThrow(new ConfigError('secret', 'must be at least 32 bytes, got 3'));
    });
  });

  describe(PaiClientModule.registerAsync.name, () => {
    it('should build the client from a factory with injected dependencies', async () => {
      const app = await Test.createTestingModule({
        imports: [
          PaiClientModule.registerAsync({
            imports: [SettingsModule],
            inject: [Settings],
            useFactory: (settings: Settings) => ({
              host: '127.0.0.1',
              port: 8080,
              kid: 'default',
              secret: settings.secret,
            }),
          }),
        ],
      }).compile();
      expect(app.get(PaiClient)).toBeInstanceOf(PaiClient);
      await app.close();
    });

    it('should stop the start when the factory gives a wrong option, naming it', async () => {
      const compiling = Test.createTestingModule({
        imports: [
          PaiClientModule.registerAsync({
            useFactory: () =>
              Promise.resolve({
                host: '127.0.0.1',
                port: 8080,
                kid: 'has space',
                secret: randomBytes(32),
              }),
          }),
        ],
      }).compile();
      await expect(compiling).rejects.toThrow(/^kid: /);
    });
  });
});
