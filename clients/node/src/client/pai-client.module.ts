import {
  DynamicModule,
  Module,
  OnApplicationShutdown,
  Inject,
} from '@nestjs/common';
import {
  ClientProxyFactory,
  Transport,
  type ClientProxy,
} from '@nestjs/microservices';
import type { Authenticator } from '@nats-io/transport-node';
import { PaiClient, type PaiClientOptions } from './pai-client';
import { NatsClientProxy } from './nats-client.proxy';

export const PAI_CLIENT_OPTIONS = Symbol('PAI_CLIENT_OPTIONS');

/** A client of the service behind a NATS broker (PAI_TRANSPORT=nats) instead of its TCP port. */
export interface PaiNatsClientOptions extends Omit<
  PaiClientOptions,
  'host' | 'port' | 'tls'
> {
  transport: 'nats';
  /** `nats://` or `tls://` URLs, as PAI_NATS_SERVERS (credentials in the URL are accepted). */
  servers: string | readonly string[];
  /** The service's PAI_NATS_SUBJECT_PREFIX. Default `pai.`. */
  subjectPrefix?: string;
  /**
   * Replies come back on `<inboxPrefix><unique id>`; it must lie under the service's
   * PAI_NATS_INBOX_PREFIX. Default `_INBOX.`. A prefix of this client's own (`_INBOX.billing.`),
   * the only inboxes the broker lets it subscribe to, keeps other clients from reading its
   * replies (docs/nats.md).
   */
  inboxPrefix?: string;
  /**
   * nats.js's authenticator, instead of credentials in the URLs:
   * `nkeyAuthenticator(seed)`, `credsAuthenticator(fileBytes)`, … from `@nats-io/transport-node`.
   */
  authenticator?: Authenticator;
}

/** `{ host, port, tls? }` for TCP (the default), or `{ transport: 'nats', servers, … }`. */
export type PaiClientModuleOptions =
  (PaiClientOptions & { transport?: 'tcp' }) | PaiNatsClientOptions;

/**
 * For other Nest services: `imports: [PaiClientModule.register({ host, port, kid, secret })]`
 * (or `{ transport: 'nats', servers, kid, secret }`), then inject PaiClient.
 */
@Module({})
export class PaiClientModule implements OnApplicationShutdown {
  constructor(@Inject(PaiClient) private readonly client: PaiClient) {}

  static register(options: PaiClientModuleOptions): DynamicModule {
    return {
      module: PaiClientModule,
      providers: [
        { provide: PAI_CLIENT_OPTIONS, useValue: options },
        {
          provide: PaiClient,
          inject: [PAI_CLIENT_OPTIONS],
          useFactory: (opts: PaiClientModuleOptions) => createPaiClient(opts),
        },
      ],
      exports: [PaiClient],
    };
  }

  async onApplicationShutdown(): Promise<void> {
    await this.client.close();
  }
}

/** A PaiClient without a Nest module around it (scripts, tests, the CLI). */
export function createPaiClient(options: PaiClientModuleOptions): PaiClient {
  if (options.transport === 'nats') {
    const proxy = new NatsClientProxy(
      options.subjectPrefix ?? 'pai.',
      options.servers,
      {
        inboxPrefix: options.inboxPrefix,
        authenticator: options.authenticator,
      },
    );
    // ClientNats is a ClientProxy typed with NATS's status names; PaiClient needs only send/close.
    return new PaiClient(proxy as unknown as ClientProxy, options);
  }
  const proxy = ClientProxyFactory.create({
    transport: Transport.TCP,
    options: {
      host: options.host,
      port: options.port,
      tlsOptions: options.tls,
    },
  });
  return new PaiClient(proxy, options);
}
