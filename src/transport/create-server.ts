import type { AppConfig } from '../config/config';
import { NatsServer } from './nats.server';
import { TcpServer, createTcpServer } from './tcp.server';

/** The transport strategy the configuration chose; both speak the same signed protocol. */
export type ProtocolServer = TcpServer | NatsServer;

/** The service's server as configured: one place for main.ts and the end-to-end tests. */
export function createServer(config: AppConfig): ProtocolServer {
  const { transport } = config;
  if (transport.kind === 'tcp') return createTcpServer(config);
  // loadConfig refuses this combination; a config built by hand must not slip past it.
  if (config.nonceStore === 'memory') {
    throw new Error(
      'the NATS transport needs a shared nonce record (database or redis): instances in a queue group must share it',
    );
  }
  return new NatsServer(transport, config);
}
