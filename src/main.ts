import { Logger } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { AppModule } from './app.module';
import { ConfigError } from '@pai/client/config/config.error';
import { AppConfig, loadConfig } from './config/config';
import { SidePort } from './observability/side-port';
import { NestPinoLogger, loggerFor } from './observability/logger';
import { Metrics } from './observability/metrics';
import {
  describeNatsServers,
  type NatsTransport,
} from './config/transport-config';
import { createServer, type ProtocolServer } from './transport/create-server';
import { TcpServer } from './transport/tcp.server';

async function bootstrap(): Promise<void> {
  let config: AppConfig;
  try {
    config = loadConfig();
  } catch (error) {
    // The message names the variable and never its value's secret part.
    if (error instanceof ConfigError) stop(error.message);
    throw error;
  }

  const server = createServer(config);
  const app = await NestFactory.createMicroservice(AppModule.forRoot(config), {
    strategy: server,
    // Nest's own lines, from the first (waiting for the database included), as JSON.
    logger: new NestPinoLogger(loggerFor(config)),
  });
  // SIGTERM/SIGINT: drain (TcpServer.close, NatsServer.close), close the database, then exit 0. Without
  // useProcessExit Nest re-raises the signal after cleanup and the exit status says "killed".
  app.enableShutdownHooks(['SIGTERM', 'SIGINT'], { useProcessExit: true });
  try {
    await app.listen();
  } catch (error) {
    // A dependency found unfit at start (a Redis that may evict the nonce record).
    if (error instanceof ConfigError) stop(error.message);
    throw error;
  }
  app.get(Metrics).trackServer(server);
  const httpPort = app.get(SidePort).boundPort();

  const where =
    config.database.type === 'mysql'
      ? `MySQL database ${config.database.database}`
      : `SQLite ${config.database.file}`;
  const { transport, http } = config;
  // Tests and the bench parse `listening on host:port` of the TCP line.
  const listening =
    transport.kind === 'tcp'
      ? `${transport.host}:${boundPort(server)}${transport.tls ? ' (TLS)' : ''}`
      : describeNats(transport);
  new Logger('PAI').log(
    `listening on ${listening}, ${where}, keys: ${[...config.macKeys.keys()].join(', ')}` +
      (http && httpPort
        ? `, health and metrics on http://${http.host}:${httpPort}`
        : ''),
  );
}

function boundPort(server: ProtocolServer): number {
  return server instanceof TcpServer ? server.boundPort() : 0;
}

/** The servers as configured, without their credentials (loadConfig took those out). */
function describeNats(transport: NatsTransport): string {
  return `NATS ${describeNatsServers(transport)}, subjects ${transport.subjectPrefix}>, queue ${transport.queue}, replies to ${transport.inboxPrefix}>`;
}

/** One line on stderr (the operator's log has the details), exit status 1. */
function stop(problem: string): never {
  console.error(`PAI cannot start: ${problem}`);
  process.exit(1);
}

// Any other failure at start (a database that refuses the credentials, say): one line too, and
// no stack trace on the terminal.
bootstrap().catch((error: unknown) => {
  if ((error as NodeJS.ErrnoException).code === 'EADDRINUSE') {
    const { address, port } = error as { address?: string; port?: number };
    stop(
      `${address}:${port} is in use by another process; stop that process, or set PAI_PORT (PAI_HTTP_PORT for the health port) to a free port`,
    );
  }
  stop(
    `${error instanceof Error ? error.message : String(error)} (details in the log above; PAI_LOG_LEVEL=debug for more)`,
  );
});
