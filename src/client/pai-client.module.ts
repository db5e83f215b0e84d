import {
  DynamicModule,
  Module,
  OnApplicationShutdown,
  Inject,
} from '@nestjs/common';
import { ClientProxyFactory, Transport } from '@nestjs/microservices';
import { PaiClient, type PaiClientOptions } from './pai-client';

export const PAI_CLIENT_OPTIONS = Symbol('PAI_CLIENT_OPTIONS');

/**
 * For other Nest services: `imports: [PaiClientModule.register({ host, port, kid, secret })]`,
 * then inject PaiClient.
 */
@Module({})
export class PaiClientModule implements OnApplicationShutdown {
  constructor(@Inject(PaiClient) private readonly client: PaiClient) {}

  static register(options: PaiClientOptions): DynamicModule {
    return {
      module: PaiClientModule,
      providers: [
        { provide: PAI_CLIENT_OPTIONS, useValue: options },
        {
          provide: PaiClient,
          inject: [PAI_CLIENT_OPTIONS],
          useFactory: (opts: PaiClientOptions) => createPaiClient(opts),
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
export function createPaiClient(options: PaiClientOptions): PaiClient {
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
