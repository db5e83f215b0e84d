import { Logger } from '@nestjs/common';
import {
  NatsContext,
  ServerNats,
  type WritePacket,
} from '@nestjs/microservices';
import type {
  Msg,
  NatsConnection,
  Subscription,
} from '@nats-io/transport-node';
import { isUnderPrefix, type NatsTransport } from '../config/transport-config';
import { natsConnectionOptions } from '@pai/client/config/nats-servers';
import { settlesWithin } from '../common/deadline';
import { logDrain, type DrainResult } from './drain';
import { waitUntilUp } from '../common/wait-until-up';
import { ErrorCode } from '@pai/client/protocol/error-code';
import { unsignedFailure } from '../protocol/reply-signer';
import { exactRoute } from '../protocol/routing';
import { SampledWarning } from '../common/sampled-warning';

interface Limits {
  readonly maxMessageBytes: number;
  readonly drainTimeoutMs: number;
}

/**
 * Nest's NATS server with the protocol rules of the TCP one: a request to an unknown pattern gets
 * a signed BAD_REQUEST, events are dropped, oversized messages run no handler, and close() drains.
 * Replies go only to reply subjects under the inbox prefix: the requester names the subject, and
 * the service would otherwise publish its signed replies wherever a peer asked.
 *
 * It subscribes once, to `<prefix>>` in the queue group, and dispatches on the subject with the
 * prefix removed. Nest subscribes once per handler instead; then a pattern with no handler has no
 * subscriber at all (the client only sees "no responders", unsigned), and NATS merges queue
 * subscribers by queue name across subjects, so per-pattern and wildcard subscriptions in one
 * queue group would steal each other's messages.
 */
export class NatsServer extends ServerNats {
  /** Set by the last close(): what the graceful stop achieved (logged, and read by tests). */
  lastDrain?: DrainResult;
  private readonly protocolLogger = new Logger(NatsServer.name);
  private subscription?: Subscription;
  private connected = false;
  private draining = false;
  private inFlightCount = 0;
  private settle?: () => void;
  private readonly droppedEvents = new SampledWarning(
    this.protocolLogger,
    (count) =>
      `dropped ${count} event message(s): events are not part of the protocol`,
  );
  private readonly foreignReplySubjects = new SampledWarning(
    this.protocolLogger,
    (count) =>
      `refused ${count} request(s) whose reply subject is outside PAI_NATS_INBOX_PREFIX: no handler ran, nothing was published`,
  );
  private readonly refusedMessages = new SampledWarning(
    this.protocolLogger,
    (count) =>
      `refused ${count} message(s) over PAI_MAX_MESSAGE_BYTES or not a JSON request packet`,
  );

  constructor(
    private readonly transport: NatsTransport,
    private readonly limits: Limits,
  ) {
    super({
      ...natsConnectionOptions(transport),
      queue: transport.queue,
      name: 'pai',
      // The client reconnects by itself; without this it gives up after 10 attempts (about 20 s)
      // and the process would go on running with no subscription. Readiness reports the outage.
      maxReconnectAttempts: -1,
    });
    this.status.subscribe((status) => {
      // NatsStatus is a const enum of Nest's, not importable at run time.
      this.connected = (status as string) === 'connected';
    });
  }

  /** Requests being handled (received and not yet replied to); NATS has no connections to count. */
  get load(): { connections: number; inFlight: number } {
    return { connections: 0, inFlight: this.inFlightCount };
  }

  /**
   * Messages that ran no handler: events (no reply subject, or no id), requests naming a reply
   * subject outside the inbox prefix, and requests refused for their size or form.
   */
  get refusals(): { events: number; replySubjects: number; messages: number } {
    return {
      events: this.droppedEvents.recorded,
      replySubjects: this.foreignReplySubjects.recorded,
      messages: this.refusedMessages.recorded,
    };
  }

  /** Connected to the broker and subscribed: what readiness reports. */
  isReceiving(): boolean {
    return (
      this.connected &&
      !this.draining &&
      this.subscription !== undefined &&
      !this.subscription.isClosed()
    );
  }

  /**
   * A broker that is not up yet (started together with the service, or restarting) is waited for,
   * with backoff and a log line per attempt, as the database is: an orchestrator's health check,
   * not a crash loop, decides when that is too long. Anything else (refused credentials, bad TLS)
   * fails at once.
   */
  override createNatsClient(): Promise<NatsConnection> {
    return waitUntilUp(
      {
        name: 'NATS broker',
        logger: this.protocolLogger,
        isTransient: (error) => {
          const name = error instanceof Error ? error.name : '';
          return (
            !this.draining &&
            (name === 'ConnectionError' || name === 'TimeoutError')
          );
        },
        // The error's own text ("connection refused"): the URLs, credentials included, stay out.
        describe: (error) => (error as Error).message,
      },
      async () => (await super.createNatsClient()) as NatsConnection,
    );
  }

  override bindEvents(client: NatsConnection): void {
    this.subscription = client.subscribe(`${this.transport.subjectPrefix}>`, {
      queue: this.transport.queue,
      callback: (error, message) => {
        if (error) {
          // A permissions violation on the subject, for one: the broker's text, no message data.
          this.protocolLogger.error(`subscription error: ${error.message}`);
          return;
        }
        this.receive(message);
      },
    });
    void this.watchConnection(client);
  }

  /**
   * A graceful stop: the subscription is drained (the broker stops routing to this instance and
   * the messages it already delivered are still handled, so none is lost to the queue group), the
   * requests in flight finish and publish their replies (bounded by PAI_DRAIN_TIMEOUT_MS), the
   * replies are flushed, and only then is the connection closed. Nest awaits this before the
   * database is closed.
   */
  override async close(): Promise<void> {
    const started = performance.now();
    this.draining = true;
    let client: NatsConnection | undefined;
    try {
      client = this.unwrap<NatsConnection>();
    } catch {
      // Never connected: nothing to drain.
    }
    if (client && !client.isClosed()) {
      const deadline = started + this.limits.drainTimeoutMs;
      const left = () => deadline - performance.now();
      if (this.subscription && !this.subscription.isClosed()) {
        await settlesWithin(this.subscription.drain(), left());
      }
      const inFlight = this.inFlightCount;
      const drained = await settlesWithin(this.allReplied(), left());
      // Replies are queued on the connection; flush them before it closes.
      await settlesWithin(client.flush(), left() + 1_000);
      this.lastDrain = {
        drained,
        abandoned: this.inFlightCount,
        elapsedMs: Math.round(performance.now() - started),
      };
      logDrain(this.protocolLogger, inFlight, this.lastDrain);
    }
    await super.close();
  }

  private receive(message: Msg): void {
    // With no reply subject nobody can learn the outcome: handled as the event it is on the wire.
    if (!message.reply) {
      this.droppedEvents.record();
      return;
    }
    // Before anything is parsed or answered, even with an unsigned refusal.
    if (!isUnderPrefix(message.reply, this.transport.inboxPrefix)) {
      this.foreignReplySubjects.record();
      return;
    }
    // Measured on the raw bytes, before any parsing: an oversized message costs nothing more.
    if (message.data.length > this.limits.maxMessageBytes) {
      return this.refuse(message, 'message', 'too large');
    }
    let packet: unknown;
    try {
      packet = JSON.parse(message.string());
    } catch {
      return this.refuse(message, 'message', 'not JSON');
    }
    if (typeof packet !== 'object' || packet === null || Array.isArray(packet))
      return this.refuse(message, 'message', 'not a request packet');
    const { id, data } = packet as { id?: unknown; data?: unknown };
    if (id === undefined) {
      this.droppedEvents.record();
      return;
    }
    if (typeof id !== 'string' && typeof id !== 'number') {
      return this.refuse(message, 'id', 'not a request id');
    }
    // The subscription only delivers subjects under the prefix.
    const pattern = message.subject.slice(this.transport.subjectPrefix.length);
    // The handlers, and the MAC guard through patternOf, see the bare pattern, as over TCP.
    const context = new NatsContext([pattern, message.headers]);
    const handler = exactRoute(this.messageHandlers, pattern);
    this.inFlightCount += 1;
    let finished = false;
    const finish = () => {
      if (finished) return;
      finished = true;
      this.inFlightCount -= 1;
      if (this.inFlightCount === 0) this.settle?.();
    };
    const publish = this.getPublisher(message, String(id), context);
    const respond = (packet: WritePacket): void => {
      try {
        publish(packet);
      } finally {
        // The last packet of the reply is queued on the connection: close() flushes it.
        if (packet.isDisposed) finish();
      }
    };
    // Typed void, but it returns the hooks' promise, which rejects when the handler could not
    // even produce a stream (Nest's own NATS server catches it the same way).
    const running = this.handleRequest(
      context,
      async () => this.transformToObservable(await handler(data, context)),
      respond,
    ) as unknown as Promise<void> | undefined;
    void Promise.resolve(running).catch((error: unknown) => {
      finish();
      this.handleError(error as string);
    });
  }

  /**
   * An unsigned BAD_REQUEST for a message that cannot be a request: without parsing it (too
   * large) or without a packet, the key and nonce to sign with are unknown, as for a request
   * whose data is not an envelope. It has no `id`: Nest's client accepts a reply without one on
   * the request's own inbox, and nothing else reads that inbox.
   */
  private refuse(message: Msg, field: string, problem: string): void {
    this.refusedMessages.record();
    if (!message.reply) return;
    const err = unsignedFailure(ErrorCode.BAD_REQUEST, [{ field, problem }]);
    message.respond(JSON.stringify({ err, isDisposed: true }));
  }

  private allReplied(): Promise<void> {
    if (this.inFlightCount === 0) return Promise.resolve();
    return new Promise((resolve) => {
      this.settle = resolve;
    });
  }

  /** A connection closed by anything but close() will not come back: say so loudly. */
  private async watchConnection(client: NatsConnection): Promise<void> {
    const error = await client.closed();
    if (!this.draining) {
      this.protocolLogger.error(
        `the NATS connection closed for good${error ? `: ${error.message}` : ''}; this instance receives nothing until restarted`,
      );
    }
  }
}
