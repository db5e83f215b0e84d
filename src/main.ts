import { Logger } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { AppModule } from './app.module';
import { ConfigError } from './config/config.error';
import { AppConfig, loadConfig } from './config/config';
import { HttpSideServer } from './observability/http-side.server';
import { NestPinoLogger, loggerFor } from './observability/logger';
import { Metrics } from './observability/metrics';
import { createPaiServer } from './protocol/pai-tcp.server';

async function bootstrap(): Promise<void> {
  let config: AppConfig;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      // The message names the variable and never its value's secret part.
      console.error(`PAI cannot start: ${error.message}`);
      process.exit(1);
    }
    throw error;
  }

  const server = createPaiServer(config);
  const app = await NestFactory.createMicroservice(AppModule.forRoot(config), {
    strategy: server,
    // Nest's own lines, from the first (waiting for the database included), as JSON.
    logger: new NestPinoLogger(loggerFor(config)),
  });
  // SIGTERM/SIGINT: drain (PaiTcpServer.close), close the database, then exit 0. Without
  // useProcessExit Nest re-raises the signal after cleanup and the exit status says "killed".
  app.enableShutdownHooks(['SIGTERM', 'SIGINT'], { useProcessExit: true });
  await app.listen();
  app.get(Metrics).trackTcpServer(server);
  const httpPort = app.get(HttpSideServer).boundPort();

  const where =
    config.database.type === 'mysql'
      ? `MySQL database ${config.database.database}`
      : `SQLite ${config.database.file}`;
  new Logger('PAI').log(
    `listening on ${config.host}:${server.boundPort()}${config.tls ? ' (TLS)' : ''}, ${where}, keys: ${[...config.macKeys.keys()].join(', ')}` +
      (httpPort
        ? `, health and metrics on http://${config.http!.host}:${httpPort}`
        : ''),
  );
}

void bootstrap();
