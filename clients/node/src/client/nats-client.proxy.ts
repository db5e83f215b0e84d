import { ClientNats, type MsPattern } from '@nestjs/microservices';
import type { Msg } from '@nats-io/transport-node';
import { isJsonObject } from '../protocol/envelope';
import type { ReplyScreening } from './pai-client';
import {
  natsConnectionOptions,
  parseNatsServerList,
  natsClientOptions,
  type NatsClientExtras,
} from '../config/nats-servers';

/** NATS status code of the broker's reply to a request nobody subscribes to. */
const NO_RESPONDERS = 503;

type ReplyTest = (pattern: string, request: unknown, reply: unknown) => boolean;

/**
 * Nest's NATS client, publishing `<subjectPrefix><pattern>` (the service subscribes to
 * `<subjectPrefix>>`). The packet and the MAC keep the bare pattern.
 *
 * Any connection the broker lets publish into a requester's inbox can answer in the service's
 * place, first. With a reply test installed (PaiClient installs its MAC check), a reply that fails
 * it is dropped and the wait for the genuine one goes on, so such a peer can delay an answer (up
 * to the timeout) but not replace it.
 */
export class NatsClientProxy extends ClientNats implements ReplyScreening {
  private replyTest?: ReplyTest;

  constructor(
    private readonly subjectPrefix: string,
    servers: string | readonly string[],
    extras: NatsClientExtras = {},
  ) {
    const list = parseNatsServerList(
      typeof servers === 'string' ? servers.split(',') : servers,
      'servers',
    );
    super({
      ...natsConnectionOptions(list),
      ...natsClientOptions(list, extras),
      name: 'pai-client',
      // A long-lived client keeps trying (the default gives up after about 20 s); requests made
      // meanwhile fail at once as CONNECTION, or time out.
      maxReconnectAttempts: -1,
    });
  }

  screenReplies(test: ReplyTest): void {
    this.replyTest = test;
  }

  protected override normalizePattern(pattern: MsPattern): string {
    return this.subjectPrefix + super.normalizePattern(pattern);
  }

  /**
   * Nest reports the broker's "no responders" as an empty response; say what it means: no
   * instance of the service is subscribed to that subject (none running, or another prefix).
   */
  override createSubscriptionHandler(
    ...args: Parameters<ClientNats['createSubscriptionHandler']>
  ): ReturnType<ClientNats['createSubscriptionHandler']> {
    const [packet, deliver] = args;
    const test = this.replyTest;
    const callback: typeof deliver = test
      ? (message) => {
          const reply: unknown = message.err ?? message.response;
          // A reply of the protocol's shape that does not verify for this very request is not
          // the service's: ignored, not delivered.
          if (isJsonObject(reply) && 'ok' in reply) {
            if (!test(String(packet.pattern), packet.data, reply)) return;
          }
          deliver(message);
        }
      : deliver;
    const handle = super.createSubscriptionHandler(packet, callback);
    return (error, message) => {
      const status = (message as Msg | undefined)?.headers?.code;
      if (!error && status === NO_RESPONDERS) {
        return Promise.resolve(
          callback({
            err: new Error(
              `no PAI instance is subscribed to ${this.normalizePattern(packet.pattern as MsPattern)} on NATS (no responders)`,
            ),
            isDisposed: true,
          }),
        );
      }
      return handle(error, message);
    };
  }
}
