import type { AppConfig } from '../config/config';
import { PaiNatsServer } from './pai-nats.server';
import { PaiTcpServer, createPaiTcpServer } from './pai-tcp.server';

/** The transport strategy the configuration chose; both speak the same signed protocol. */
export type PaiServer = PaiTcpServer | PaiNatsServer;

/** The service's server as configured: one place for main.ts and the end-to-end tests. */
export function createPaiServer(config: AppConfig): PaiServer {
  const { transport } = config;
  if (transport.kind === 'tcp') return createPaiTcpServer(config);
  // loadConfig refuses this combination; a config built by hand must not slip past it.
  if (config.nonceStore === 'memory') {
    throw new Error(
      'the NATS transport needs a shared nonce record (database or redis): instances in a queue group must share it',
    );
  }
  return new PaiNatsServer(transport, config);
}
