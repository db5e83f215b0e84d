import type { AppConfig } from '../config/config';
import { NatsServer } from './nats.server';
import { TcpServer, createTcpServer } from './tcp.server';

/** The transport strategy the configuration chose; both speak the same signed protocol. */
export type ProtocolServer = TcpServer | NatsServer;

/** The service's server as configured: one place for main.ts and the end-to-end tests. */
export function createServer(config: AppConfig): ProtocolServer {
  const { transport } = config;
  return transport.kind === 'tcp'
    ? createTcpServer(transport, config)
    : new NatsServer(transport, config);
}
