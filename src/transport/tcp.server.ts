import { Logger } from '@nestjs/common';
import { ServerTCP } from '@nestjs/microservices';
import { InvalidTcpDataReceptionException } from '@nestjs/microservices/errors/invalid-tcp-data-reception.exception.js';
import type { Server } from 'node:net';
import type { CommonConfig } from '../config/config';
import type { TcpTransport } from '../config/transport-config';
import { ConnectionTracker } from './connection-tracker';
import { logDrain, type DrainResult } from './drain';
import { framedSocketClass } from './framed-socket';
import { exactRoute } from '../protocol/routing';
import { SampledWarning } from '../common/sampled-warning';

/**
 * Nest's TCP server with the protocol's rules of its own: patterns match exactly, a request to an
 * unknown pattern goes through the guard to a BAD_REQUEST (Nest would send an unsigned string),
 * and events, which the protocol does not define, are dropped without running any handler.
 */
export class TcpServer extends ServerTCP {
  /** Set by the last close(): what the graceful stop achieved (logged, and read by tests). */
  lastDrain?: DrainResult;
  private readonly protocolLogger = new Logger(TcpServer.name);
  private readonly droppedEvents = new SampledWarning(
    this.protocolLogger,
    (count) =>
      `dropped ${count} event message(s): events are not part of the protocol`,
  );
  private readonly closedForFraming = new SampledWarning(
    this.protocolLogger,
    (count) =>
      `closed ${count} connection(s) for invalid framing, corrupt lengths or oversized frames`,
  );

  private readonly refusedOverCap = new SampledWarning(
    this.protocolLogger,
    (count) =>
      `refused ${count} connection(s) over the PAI_MAX_CONNECTIONS cap of ${this.unwrap<Server>().maxConnections}`,
  );

  constructor(
    options: ConstructorParameters<typeof ServerTCP>[0],
    private readonly tracker: ConnectionTracker,
    private readonly limits: { maxConnections: number; drainTimeoutMs: number },
  ) {
    super(options);
    const server = this.unwrap<Server>();
    // Node refuses connections over the cap at accept, before any byte is read; the
    // connections already open go on being served.
    server.maxConnections = limits.maxConnections;
    server.on('drop', () => this.refusedOverCap.record());
  }

  /** Connections closed or refused by the admission rules, by reason. */
  get refusals(): ConnectionTracker['refusals'] {
    return this.tracker.refusals;
  }

  /** Open client connections and requests in flight on them. */
  get load(): { connections: number; inFlight: number } {
    return { connections: this.tracker.open, inFlight: this.tracker.inFlight };
  }

  /**
   * A graceful stop: no new connections, no new requests, the running ones finish and reply
   * (bounded by PAI_DRAIN_TIMEOUT_MS), then Nest's close() destroys whatever is left. Nest awaits
   * this before the database is closed.
   */
  // ServerTCP declares close() as void, but NestMicroservice awaits whatever it returns.
  // eslint-disable-next-line @typescript-eslint/no-misused-promises
  override async close(): Promise<void> {
    const server = this.unwrap<Server>();
    if (server.listening) server.close();
    const { inFlight } = this.tracker;
    this.lastDrain = await this.tracker.drain(this.limits.drainTimeoutMs);
    logDrain(this.protocolLogger, inFlight, this.lastDrain);
    super.close();
  }

  override getHandlerByPattern(pattern: string) {
    return exactRoute(this.messageHandlers, pattern);
  }

  override handleEvent(): Promise<void> {
    this.droppedEvents.record();
    return Promise.resolve();
  }

  /**
   * A peer that breaks the framing has its connection closed by the socket class; Nest would then
   * log a stack trace for each one, which a hostile peer could turn into a disk-filling flood.
   */
  override handleError(error: unknown): void {
    if (error instanceof InvalidTcpDataReceptionException) {
      this.closedForFraming.record();
      return;
    }
    super.handleError(error as string);
  }

  /** The port listens: what readiness reports. */
  isReceiving(): boolean {
    return this.unwrap<Server>().listening;
  }

  /** The port actually bound (differs from the configured one when that was 0). */
  boundPort(): number {
    const address = this.unwrap<Server>().address();
    return typeof address === 'object' && address ? address.port : 0;
  }
}

/** The service's TCP server as configured (see createServer). */
export function createTcpServer(
  tcp: TcpTransport,
  limits: Pick<CommonConfig, 'maxMessageBytes' | 'drainTimeoutMs'>,
): TcpServer {
  const tracker = new ConnectionTracker(
    tcp.maxConnectionsPerAddress,
    new Logger(TcpServer.name),
  );
  return new TcpServer(
    {
      host: tcp.host,
      port: tcp.port,
      tlsOptions: tcp.tls
        ? { cert: tcp.tls.cert, key: tcp.tls.key }
        : undefined,
      socketClass: framedSocketClass({
        maxMessageChars: limits.maxMessageBytes,
        frameTimeoutMs: tcp.frameTimeoutMs,
        idleTimeoutMs: tcp.idleTimeoutMs,
        tracker,
        admission: tcp,
      }),
    },
    tracker,
    {
      maxConnections: tcp.maxConnections,
      drainTimeoutMs: limits.drainTimeoutMs,
    },
  );
}
