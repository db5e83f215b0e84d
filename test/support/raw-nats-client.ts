/**
 * The NATS counterpart of RawClient: Nest's request packet written by hand and published under
 * `<prefix><pattern>` with a reply inbox, so the suites can send hand-built envelopes (and
 * hand-built garbage) to the service over a broker. Only the NATS client library is shared.
 */
import {
  connect,
  createInbox,
  type NatsConnection,
} from '@nats-io/transport-node';
import { randomUUID } from 'node:crypto';
import type { RawTransport, WireReply } from './raw-client';

export class RawNatsClient implements RawTransport {
  private constructor(
    private readonly connection: NatsConnection,
    private readonly subjectPrefix: string,
  ) {}

  static async connect(
    servers: readonly string[],
    subjectPrefix: string,
  ): Promise<RawNatsClient> {
    return new RawNatsClient(
      await connect({ servers: [...servers], name: 'pai-e2e-raw' }),
      subjectPrefix,
    );
  }

  request(pattern: string, data: unknown): Promise<WireReply> {
    return this.requestText(
      pattern,
      JSON.stringify({ pattern, data, id: randomUUID() }),
    );
  }

  /**
   * Publishes `text` as it is under the pattern's subject and resolves with the reply: the
   * packet's `err`, or its `response` once a packet says `isDisposed`.
   */
  requestText(pattern: string, text: string | Uint8Array): Promise<WireReply> {
    const inbox = createInbox();
    const collected: Record<string, any> = {};
    const reply = new Promise<WireReply>((resolve, reject) => {
      const subscription = this.connection.subscribe(inbox, {
        callback: (error, message) => {
          if (error) return reject(error);
          if (message.headers?.code === 503) {
            subscription.unsubscribe();
            return reject(new Error('no responders'));
          }
          Object.assign(collected, message.json());
          if (collected.isDisposed) {
            subscription.unsubscribe();
            resolve((collected.err ?? collected.response) as WireReply);
          }
        },
      });
    });
    this.connection.publish(this.subjectPrefix + pattern, text, {
      reply: inbox,
    });
    return reply;
  }

  /** A request packet naming `reply` as its reply subject, whatever that is; no reply is awaited. */
  publishRequest(pattern: string, data: unknown, reply: string): void {
    this.connection.publish(
      this.subjectPrefix + pattern,
      JSON.stringify({ pattern, data, id: randomUUID() }),
      { reply },
    );
  }

  /** A packet without a reply subject: what Nest sends for an event. */
  writeFrame(message: { pattern: string } & Record<string, unknown>): void {
    this.connection.publish(
      this.subjectPrefix + message.pattern,
      JSON.stringify(message),
    );
  }

  close(): void {
    void this.connection.close();
  }
}
