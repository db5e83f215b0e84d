import {
  ConfigurableModuleBuilder,
  type ConfigurableModuleAsyncOptions,
  DynamicModule,
  Inject,
  Module,
  OnApplicationShutdown,
} from '@nestjs/common';
import {
  ClientProxyFactory,
  Transport,
  type ClientProxy,
} from '@nestjs/microservices';
import type { Authenticator } from '@nats-io/transport-node';
import { PaiClient, type PaiClientOptions } from './pai-client';
import { NatsClientProxy } from './nats-client.proxy';
import { checkClientOptions } from './client-options';

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

const { ConfigurableModuleClass, MODULE_OPTIONS_TOKEN } =
  new ConfigurableModuleBuilder<PaiClientModuleOptions>().build();

/** The options PaiClientModule was given, as a provider token. */
export const PAI_CLIENT_OPTIONS = MODULE_OPTIONS_TOKEN;

/** What registerAsync takes: `useFactory` and `inject`, `useClass` or `useExisting`, `imports`. */
export type PaiClientModuleAsyncOptions =
  ConfigurableModuleAsyncOptions<PaiClientModuleOptions>;

/** The module Nest's builder made, with the client provided and exported. */
function withClient(module: DynamicModule): DynamicModule {
  return {
    ...module,
    providers: [
      ...(module.providers ?? []),
      {
        provide: PaiClient,
        inject: [MODULE_OPTIONS_TOKEN],
        // Checks the options again: registerAsync's come from a factory, at the start.
        useFactory: (options: PaiClientModuleOptions) =>
          createPaiClient(options),
      },
    ],
    exports: [PaiClient],
  };
}

/**
 * For other Nest services: `imports: [PaiClientModule.register({ host, port, kid, secret })]`
 * (or `{ transport: 'nats', servers, kid, secret }`), or `PaiClientModule.registerAsync({
 * imports: [ConfigModule], inject: [ConfigService], useFactory: (config) => ({ … }) })`, then
 * inject PaiClient. A wrong option stops the start with an error that names it.
 */
@Module({})
export class PaiClientModule
  extends ConfigurableModuleClass
  implements OnApplicationShutdown
{
  constructor(@Inject(PaiClient) private readonly client: PaiClient) {
    super();
  }

  static override register(options: PaiClientModuleOptions): DynamicModule {
    checkClientOptions(options);
    return withClient(super.register(options));
  }

  static override registerAsync(
    options: PaiClientModuleAsyncOptions,
  ): DynamicModule {
    return withClient(super.registerAsync(options));
  }

  async onApplicationShutdown(): Promise<void> {
    await this.client.close();
  }
}

/** A PaiClient without a Nest module around it (scripts, tests, the CLI). */
export function createPaiClient(options: PaiClientModuleOptions): PaiClient {
  checkClientOptions(options);
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
