import type { ClientProxy } from '@nestjs/microservices';
import { NotCanonicalizableError } from '../protocol/canonical-json';
import { randomBytes } from 'node:crypto';
import { firstValueFrom, timeout as rxTimeout, TimeoutError } from 'rxjs';
import { isJsonObject } from '../protocol/envelope';
import { ErrorCode } from '../protocol/error-code';
import {
  hmacHex,
  macMatches,
  replyMacInput,
  requestMacInput,
} from '../protocol/mac';
import { ClientErrorCode, PaiClientError } from './pai-client.error';
import type { PaiPattern, PaiPatterns } from './pai-patterns';

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
 * Calls the PAI service over a Nest ClientProxy: signs every request, verifies every reply's MAC,
 * and turns error replies into PaiClientError. On STALE it learns the clock offset from the
 * signed serverTime and retries once, with a new nonce; the machine's clock is never changed.
 * A request safe to repeat whose connection broke is sent again (`connectionRetries`).
 */
export class PaiClient {
  private readonly key: Buffer;
  private readonly now: () => number;
  private offsetMs = 0;

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
        return await this.sendAdjustingClock(pattern, payload);
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

  private async sendOnce<P extends PaiPattern>(
    pattern: P,
    payload: PaiPatterns[P]['request'],
  ): Promise<PaiPatterns[P]['reply']> {
    const signed = {
      kid: this.options.kid,
      ts: Math.round(this.now() + this.offsetMs),
      nonce: randomBytes(16).toString('base64url'),
      payload: payload as Record<string, unknown>,
    };
    const envelope = {
      v: 1,
      ...signed,
      mac: hmacHex(this.key, requestMacInput(pattern, signed)),
    };
    let reply: unknown;
    let failed = false;
    try {
      reply = await firstValueFrom(
        this.proxy
          .send<unknown>(pattern, envelope)
          .pipe(rxTimeout(this.options.timeoutMs ?? DEFAULT_TIMEOUT_MS)),
      );
    } catch (error) {
      if (error instanceof TimeoutError) {
        throw new PaiClientError(
          ClientErrorCode.TIMEOUT,
          `no reply to ${pattern} in time`,
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
    }
    const verified = this.verify(pattern, signed.nonce, reply);
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

  private verify(
    pattern: string,
    nonce: string,
    reply: unknown,
  ): Record<string, unknown> {
    if (!isJsonObject(reply)) {
      throw new PaiClientError(
        ClientErrorCode.REPLY_UNVERIFIED,
        'reply is not an object',
      );
    }
    const { mac, ...body } = reply;
    let input: string;
    try {
      input = replyMacInput(pattern, this.options.kid, nonce, body);
    } catch (error) {
      if (!(error instanceof NotCanonicalizableError)) throw error;
      // The service never signs such a reply: whoever sent it is not the service.
      throw new PaiClientError(
        ClientErrorCode.REPLY_UNVERIFIED,
        'reply has no canonical form, so it cannot carry a valid MAC',
      );
    }
    if (!macMatches(hmacHex(this.key, input), mac)) {
      const claimed = isJsonObject(body.error) ? body.error.code : undefined;
      throw new PaiClientError(
        ClientErrorCode.REPLY_UNVERIFIED,
        'reply MAC missing or wrong' +
          (typeof claimed === 'string'
            ? ` (it claims ${claimed}, not trusted)`
            : ''),
        { claimedCode: claimed },
      );
    }
    return body;
  }
}
