/**
 * A client that shares no code with the service: Nest's TCP framing, HMAC and the reply check
 * written again from PROTOCOL.md, so the suites prove the contract and not merely agreement
 * between two halves of one implementation. Only RFC 8785 comes from the same library.
 */
import canonicalize from 'canonicalize';
import { createHmac, randomBytes, randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { connect, Socket } from 'node:net';

export interface WireReply {
  ok: boolean;
  ts: number;
  payload?: Record<string, any>;
  error?: { code: string; message: string; [extra: string]: any };
  mac: string | null;
}

export interface SignOptions {
  kid?: string;
  key?: Buffer;
  ts?: number;
  nonce?: string;
}

const hmac = (key: Buffer, text: string) =>
  createHmac('sha256', key).update(Buffer.from(text, 'utf8')).digest('hex');

export const newNonce = () => randomBytes(18).toString('base64url');

export function signEnvelope(
  pattern: string,
  payload: Record<string, unknown>,
  key: Buffer,
  options: SignOptions = {},
) {
  const kid = options.kid ?? 'default';
  const ts = options.ts ?? Date.now();
  const nonce = options.nonce ?? newNonce();
  const text = `PAI-MAC-V2\n${pattern}\n${kid}\n${ts}\n${nonce}\n${canonicalize(payload)}`;
  return { v: 2, kid, ts, nonce, payload, mac: hmac(options.key ?? key, text) };
}

/** The request a reply answers, as the reply MAC binds it. */
export interface SentRequest {
  kid: string;
  nonce: string;
  /** The request's own MAC. */
  mac: string;
}

/** True when the reply's MAC is right for this request (pattern, kid, nonce and MAC). */
export function replyVerifies(
  reply: WireReply,
  pattern: string,
  request: SentRequest,
  key: Buffer,
): boolean {
  const { mac, ...body } = reply;
  if (typeof mac !== 'string') return false;
  return (
    hmac(
      key,
      `PAI-MAC-V2-REPLY\n${pattern}\n${request.kid}\n${request.nonce}\n${request.mac}\n${canonicalize(body)}`,
    ) === mac
  );
}

/** What the suites need of a raw client, over TCP (RawClient) or NATS (RawNatsClient). */
export interface RawTransport {
  /** Sends a Nest request packet and resolves with its reply: the `response`, or the `err`. */
  request(pattern: string, data: unknown): Promise<WireReply>;
  /** Sends a packet as it is: without an `id` it is an event, which expects no reply. */
  writeFrame(message: { pattern: string } & Record<string, unknown>): void;
  close(): void;
}

export class RawClient implements RawTransport {
  private buffer = '';
  private readonly pending = new Map<
    string,
    { resolve: (reply: WireReply) => void; packet: Record<string, any> }
  >();
  readonly closed: Promise<void>;

  private constructor(readonly socket: Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => this.onData(chunk));
    this.closed = once(socket, 'close').then(() => undefined);
    socket.on('error', () => undefined);
  }

  static async connect(port: number): Promise<RawClient> {
    const socket = connect(port, '127.0.0.1');
    // A peer that resets at once makes Node emit the error on the next tick, before the
    // constructor below could listen: without this it would be an uncaught exception.
    socket.on('error', () => undefined);
    await once(socket, 'connect');
    return new RawClient(socket);
  }

  /**
   * Sends a Nest request and resolves with its reply: the `response`, or the `err`. Given the same
   * `id`, two calls write byte-identical frames.
   */
  request(
    pattern: string,
    data: unknown,
    id: string = randomUUID(),
  ): Promise<WireReply> {
    const reply = new Promise<WireReply>((resolve) =>
      this.pending.set(id, { resolve, packet: {} }),
    );
    this.writeFrame({ pattern, data, id });
    return reply;
  }

  writeFrame(message: unknown): void {
    const json = JSON.stringify(message);
    this.socket.write(`${json.length}#${json}`);
  }

  writeRaw(text: string | Buffer): void {
    this.socket.write(text);
  }

  close(): void {
    this.socket.destroy();
  }

  private onData(chunk: string): void {
    this.buffer += chunk;
    for (;;) {
      const hash = this.buffer.indexOf('#');
      if (hash < 0) return;
      const length = Number(this.buffer.slice(0, hash));
      if (this.buffer.length < hash + 1 + length) return;
      const packet = JSON.parse(this.buffer.slice(hash + 1, hash + 1 + length));
      this.buffer = this.buffer.slice(hash + 1 + length);
      const entry = this.pending.get(packet.id);
      if (!entry) continue;
      Object.assign(entry.packet, packet);
      if (packet.isDisposed) {
        this.pending.delete(packet.id);
        entry.resolve((entry.packet.err ?? entry.packet.response) as WireReply);
      }
    }
  }
}
