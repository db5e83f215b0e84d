import {
  Inject,
  Injectable,
  OnApplicationBootstrap,
  OnApplicationShutdown,
} from '@nestjs/common';
import {
  createServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { APP_CONFIG, type AppConfig } from '../config/config';
import { Health } from './health';
import { LOGGER } from './logger';
import { Metrics } from './metrics';

/**
 * The HTTP side port (PAI_HTTP_PORT): `/health/live`, `/health/ready` and `/metrics`, for
 * orchestrators and Prometheus, which speak HTTP and not the signed protocol. A plain node:http
 * listener rather than a hybrid Nest HTTP app: the global MAC guard, filter and interceptor
 * would apply to HTTP routes too, and an HTTP platform (Express) would join the production
 * image for three GET routes. Read-only, no request body, nothing secret in any answer.
 */
@Injectable()
export class SidePort implements OnApplicationBootstrap, OnApplicationShutdown {
  private server?: Server;

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly health: Health,
    private readonly metrics: Metrics,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    const http = this.config.http;
    if (!http) return;
    this.metrics.collectProcessMetrics();
    const server = createServer((request, response) => {
      this.route(request, response).catch((error: unknown) => {
        this.logger.error(
          { err: error, path: request.url },
          'HTTP side request failed',
        );
        if (!response.headersSent) send(response, 500, 'internal error\n');
        else response.destroy();
      });
    });
    server.headersTimeout = 5_000;
    server.requestTimeout = 10_000;
    server.keepAliveTimeout = 5_000;
    server.listen(http.port, http.host);
    await once(server, 'listening');
    this.server = server;
    this.logger.info(
      { host: http.host, port: this.boundPort() },
      'HTTP side port listening (health, metrics)',
    );
  }

  /** The port actually bound (differs from the configured one when that was 0). */
  boundPort(): number | undefined {
    const address = this.server?.address() as AddressInfo | null | undefined;
    return address?.port;
  }

  async onApplicationShutdown(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    const closed = once(server, 'close');
    server.close();
    server.closeAllConnections();
    await closed;
  }

  private async route(
    request: IncomingMessage,
    response: ServerResponse,
  ): Promise<void> {
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      response.setHeader('Allow', 'GET, HEAD');
      return send(response, 405, 'method not allowed\n');
    }
    const path = (request.url ?? '/').split('?', 1)[0];
    switch (path) {
      case '/health/live':
        return sendJson(response, 200, { status: 'ok' });
      case '/health/ready': {
        const { ready, body } = await this.health.readiness();
        return sendJson(response, ready ? 200 : 503, body);
      }
      case '/metrics': {
        const text = await this.metrics.exposition();
        return send(response, 200, text, this.metrics.contentType);
      }
      default:
        return send(response, 404, 'not found\n');
    }
  }
}

function send(
  response: ServerResponse,
  status: number,
  body: string,
  contentType = 'text/plain; charset=utf-8',
): void {
  response.writeHead(status, {
    'Content-Type': contentType,
    'Content-Length': Buffer.byteLength(body),
    'Cache-Control': 'no-store',
  });
  response.end(body);
}

function sendJson(response: ServerResponse, status: number, body: unknown) {
  send(response, status, JSON.stringify(body) + '\n', 'application/json');
}
