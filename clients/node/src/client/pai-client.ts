import type { ClientProxy } from '@nestjs/microservices';
import { NotCanonicalizableError } from '../protocol/canonical-json';
import { randomBytes } from 'node:crypto';
import { firstValueFrom, timeout as rxTimeout, TimeoutError } from 'rxjs';
import {
  isJsonObject,
  PROTOCOL_VERSION,
  type Envelope,
} from '../protocol/envelope';
import { ErrorCode } from '../protocol/error-code';
import {
  hmacHex,
  macMatches,
  replyMacInput,
  requestMacInput,
  type RequestBinding,
} from '../protocol/mac';
import { ClientErrorCode, PaiClientError } from './pai-client.error';
import type { PaiPattern, PaiPatterns } from '../protocol/patterns';

export interface PaiClientOptions {
  host: string;
  port: number;
  /** Key id the service knows this client's secret under. */
  kid: string;
  /** The shared MAC secret: raw bytes, or base64 as in PAI_MAC_KEYS. */
  secret: Buffer | string;
  /** TLS connection options (e.g. `{ ca }`); plain TCP when absent. */
  tls?: import('node:tls').ConnectionOptions;
  /** Milliseconds to wait for each reply. Default 10 000. */
  timeoutMs?: number;
  /**
   * How many times a request that is safe to repeat is sent again after its connection broke
   * (CONNECTION), each time as a new signed message (fresh nonce and ts) on a new connection:
   * behind a load balancer it lands on another instance. Default 2; 0 turns it off. Safe to
   * repeat: `system.ping`, `users.me`, `transactions.list`, `auth.logout` (a repeat after a lost
   * reply finds the session revoked and answers UNAUTHENTICATED: revoked either way), and
   * `transactions.create` with a `reference` (the service answers a repeat with the first
   * transaction, `created: false`). Never repeated: a create without a reference (its reply may
   * have been lost after the commit, and a repeat would record it twice), `auth.register`,
   * `auth.login`, and any TIMEOUT (the request may still be running).
   */
  connectionRetries?: number;
  /** Wait before the first repeat, doubled before each next one. Default 100 ms. */
  connectionRetryDelayMs?: number;
  /** Source of time, for tests; defaults to Date.now. */
  now?: () => number;
}

const DEFAULT_TIMEOUT_MS = 10_000;
const DEFAULT_CONNECTION_RETRIES = 2;
const DEFAULT_CONNECTION_RETRY_DELAY_MS = 100;

/** Whether sending this request twice has the effect of sending it once. */
export function isSafeToRepeat<P extends PaiPattern>(
  pattern: P,
  payload: PaiPatterns[P]['request'],
): boolean {
  switch (pattern) {
    case 'system.ping':
    case 'users.me':
    case 'transactions.list':
    case 'auth.logout':
      return true;
    case 'transactions.create': {
      const { reference } =
        payload as PaiPatterns['transactions.create']['request'];
      return typeof reference === 'string' && reference !== '';
    }
    default:
      return false;
  }
}

/**
 * Implemented by a proxy on which anyone may publish replies (NATS: any connection the broker
 * allows can publish into a requester's inbox): PaiClient installs this test, and a reply that
 * fails it is dropped while the wait for the genuine one goes on, up to the timeout.
 */
export interface ReplyScreening {
  screenReplies(
    accept: (pattern: string, request: unknown, reply: unknown) => boolean,
  ): void;
}

function screensReplies(proxy: object): proxy is ReplyScreening {
  return typeof (proxy as Partial<ReplyScreening>).screenReplies === 'function';
}

interface SentRequest extends RequestBinding {
  readonly envelope: Envelope;
}

/** How many times a verified REPLAY of a request safe to repeat is answered by sending it again. */
const REPLAY_REFETCHES = 2;

/**
 * Calls the PAI service over a Nest ClientProxy: signs every request, verifies every reply's MAC
 * against the request it answers, and turns error replies into PaiClientError.
 *
 * What it concludes (docs/protocol.md 4, "What a client may conclude"): only a verified reply is an
 * outcome. An unverified one is REPLY_UNVERIFIED, whose outcome is unknown (the request may have
 * run). A verified REPLAY to a nonce drawn here means another copy of this very message was
 * accepted and ran; for a request safe to repeat the result is fetched by sending it again as a
 * new message (a create with a `reference` then answers `created: false` with its transaction),
 * otherwise REPLAY is reported as "executed, result unseen". On STALE it learns the clock offset
 * from the signed serverTime and retries once, with a new nonce; the machine's clock is never
 * changed. A request safe to repeat whose connection broke is sent again (`connectionRetries`).
 */
export class PaiClient {
  private readonly key: Buffer;
  private readonly now: () => number;
  private offsetMs = 0;
  /** Per request nonce, the codes claimed by replies a screening proxy dropped as unverified. */
  private readonly dropped = new Map<string, string[]>();

  constructor(
    private readonly proxy: ClientProxy,
    // The transport's own options (host, port, tls; NATS servers) are the proxy's business.
    private readonly options: Omit<PaiClientOptions, 'host' | 'port' | 'tls'>,
  ) {
    this.key =
      typeof options.secret === 'string'
        ? Buffer.from(options.secret, 'base64')
        : options.secret;
    this.now = options.now ?? Date.now;
    if (screensReplies(proxy)) {
      proxy.screenReplies((pattern, request, reply) =>
        this.answers(pattern, request, reply),
      );
    }
  }

  /** The offset (server minus local clock, ms) learned from a STALE reply; 0 until then. */
  get clockOffsetMs(): number {
    return this.offsetMs;
  }

  async send<P extends PaiPattern>(
    pattern: P,
    payload: PaiPatterns[P]['request'],
  ): Promise<PaiPatterns[P]['reply']> {
    const retries =
      this.options.connectionRetries ?? DEFAULT_CONNECTION_RETRIES;
    let delayMs =
      this.options.connectionRetryDelayMs ?? DEFAULT_CONNECTION_RETRY_DELAY_MS;
    for (let attempt = 0; ; attempt += 1) {
      try {
        return await this.sendRefetchingReplays(pattern, payload);
      } catch (error) {
        if (
          !(error instanceof PaiClientError) ||
          error.code !== ClientErrorCode.CONNECTION ||
          attempt >= retries ||
          !isSafeToRepeat(pattern, payload)
        ) {
          throw error;
        }
      }
      // Nest's ClientTCP opens a new connection on the next send; the pause lets a balancer
      // notice a dead instance and a restarting one come back.
      await new Promise((resolve) => setTimeout(resolve, delayMs));
      delayMs *= 2;
    }
  }

  /**
   * A verified REPLAY to a nonce drawn here: a copy of this very message was accepted first (sent
   * by whoever copied it off the wire) and ran. A request safe to repeat is sent again as a new
   * message, whose reply is the result this client did not see; another is reported as run.
   */
  private async sendRefetchingReplays<P extends PaiPattern>(
    pattern: P,
    payload: PaiPatterns[P]['request'],
  ): Promise<PaiPatterns[P]['reply']> {
    for (let refetch = 0; ; refetch += 1) {
      try {
        return await this.sendAdjustingClock(pattern, payload);
      } catch (error) {
        if (
          !(error instanceof PaiClientError) ||
          error.code !== ErrorCode.REPLAY
        ) {
          throw error;
        }
        if (refetch >= REPLAY_REFETCHES || !isSafeToRepeat(pattern, payload)) {
          throw new PaiClientError(
            ErrorCode.REPLAY,
            `another copy of this ${pattern} message was accepted first: the request was executed once and its result was not seen here; do not send it again blindly`,
            { ...error.details, executed: true },
          );
        }
      }
    }
  }

  private async sendAdjustingClock<P extends PaiPattern>(
    pattern: P,
    payload: PaiPatterns[P]['request'],
  ): Promise<PaiPatterns[P]['reply']> {
    try {
      return await this.sendOnce(pattern, payload);
    } catch (error) {
      if (!(error instanceof PaiClientError) || error.code !== ErrorCode.STALE)
        throw error;
      const serverTime = error.details.serverTime;
      if (typeof serverTime !== 'number') throw error;
      this.offsetMs = serverTime - this.now();
      return this.sendOnce(pattern, payload);
    }
  }

  async close(): Promise<void> {
    // Nest's ClientTCP.close() only ends its side: with a peer that never answers, the socket
    // stays half-open and keeps the caller's process alive. Destroy it too.
    let socket: { destroy?(): void } | undefined;
    try {
      // A NATS connection has no destroy(): its close() already ends it for good.
      socket = this.proxy.unwrap<{ destroy?(): void }>();
    } catch {
      // Never connected: nothing to release.
    }
    await this.proxy.close();
    socket?.destroy?.();
  }

  private sign(pattern: string, payload: Record<string, unknown>): SentRequest {
    const signed = {
      kid: this.options.kid,
      ts: Math.round(this.now() + this.offsetMs),
      nonce: randomBytes(16).toString('base64url'),
      payload,
    };
    const mac = hmacHex(this.key, requestMacInput(pattern, signed));
    return {
      pattern,
      kid: signed.kid,
      nonce: signed.nonce,
      mac,
      envelope: { v: PROTOCOL_VERSION, ...signed, mac },
    };
  }

  private async sendOnce<P extends PaiPattern>(
    pattern: P,
    payload: PaiPatterns[P]['request'],
  ): Promise<PaiPatterns[P]['reply']> {
    const request = this.sign(pattern, payload);
    let reply: unknown;
    let failed = false;
    try {
      reply = await firstValueFrom(
        this.proxy
          .send<unknown>(pattern, request.envelope)
          .pipe(rxTimeout(this.options.timeoutMs ?? DEFAULT_TIMEOUT_MS)),
      );
    } catch (error) {
      if (error instanceof TimeoutError) {
        const dropped = this.dropped.get(request.nonce) ?? [];
        throw new PaiClientError(
          ClientErrorCode.TIMEOUT,
          `no verified reply to ${pattern} in time: the request may still run or have run` +
            (dropped.length > 0
              ? `; ${dropped.length} unverified repl${dropped.length === 1 ? 'y' : 'ies'} (${[...new Set(dropped)].join(', ')}) ignored` +
                keyHint(dropped, request.kid)
              : ''),
          { unverifiedReplies: dropped.length },
        );
      }
      if (!isJsonObject(error) || !('ok' in error)) {
        throw new PaiClientError(
          ClientErrorCode.CONNECTION,
          `${pattern} failed: ${error instanceof Error ? error.message : String(error)}`,
        );
      }
      reply = error;
      failed = true;
    } finally {
      this.dropped.delete(request.nonce);
    }
    const verified = this.verify(request, reply);
    if (verified.ok === true && !failed) {
      return verified.payload as PaiPatterns[P]['reply'];
    }
    const { code, message, ...details } = (verified.error ?? {}) as {
      code?: ErrorCode;
      message?: string;
    };
    throw new PaiClientError(
      code ?? ErrorCode.INTERNAL,
      message ?? 'error reply',
      details,
    );
  }

  /** For a proxy that screens replies: whether `reply` is the service's answer to `envelope`. */
  private answers(pattern: string, envelope: unknown, reply: unknown): boolean {
    if (!isJsonObject(envelope) || !isJsonObject(reply)) return false;
    const { kid, nonce, mac } = envelope;
    if (typeof kid !== 'string' || typeof nonce !== 'string') return false;
    if (typeof mac !== 'string') return false;
    if (this.macVerifies({ pattern, kid, nonce, mac }, reply)) return true;
    const dropped = this.dropped.get(nonce) ?? [];
    if (dropped.length === 0) this.dropped.set(nonce, dropped);
    dropped.push(claimedCode(reply) ?? 'no code');
    return false;
  }

  private macVerifies(
    request: RequestBinding,
    reply: Record<string, unknown>,
  ): boolean {
    const { mac, ...body } = reply;
    try {
      return macMatches(hmacHex(this.key, replyMacInput(request, body)), mac);
    } catch (error) {
      // The service never signs a reply with no canonical form.
      if (error instanceof NotCanonicalizableError) return false;
      throw error;
    }
  }

  private verify(
    request: RequestBinding,
    reply: unknown,
  ): Record<string, unknown> {
    if (!isJsonObject(reply)) {
      throw new PaiClientError(
        ClientErrorCode.REPLY_UNVERIFIED,
        `the reply to ${request.pattern} is not an object: unverified, the request may or may not have run`,
      );
    }
    if (this.macVerifies(request, reply)) {
      const body = { ...reply };
      delete body.mac;
      return body;
    }
    const claimed = claimedCode(reply);
    throw new PaiClientError(
      ClientErrorCode.REPLY_UNVERIFIED,
      `the reply to ${request.pattern} carries no valid MAC` +
        (claimed !== undefined ? ` (it claims ${claimed})` : '') +
        ': unverified, so the request may or may not have run' +
        keyHint(claimed === undefined ? [] : [claimed], request.kid),
      { claimedCode: claimed },
    );
  }
}

/** The error code an unverified reply claims, if it has the form of one. */
function claimedCode(reply: Record<string, unknown>): string | undefined {
  const code = isJsonObject(reply.error) ? reply.error.code : undefined;
  return typeof code === 'string' && /^[A-Z_]{1,32}$/.test(code)
    ? code
    : undefined;
}

/** A misconfigured key shows up as unsigned MAC_INVALID or UNKNOWN_KEY replies: say so. */
const KEY_CODES: ReadonlySet<string> = new Set([
  ErrorCode.MAC_INVALID,
  ErrorCode.UNKNOWN_KEY,
]);

function keyHint(claimed: readonly string[], kid: string): string {
  return claimed.some((code) => KEY_CODES.has(code))
    ? `; if this persists, check that key id "${kid}" and its secret match the service's PAI_MAC_KEYS`
    : '';
}
