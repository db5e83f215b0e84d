import type { Type } from '@nestjs/common';
import { JsonSocket, TcpSocket } from '@nestjs/microservices';
import type { Socket } from 'node:net';
import { StringDecoder } from 'node:string_decoder';
import type {
  ConnectionTracker,
  TrackedConnection,
} from './connection-tracker';
import { isJsonObject } from '@pai/client/protocol/envelope';
import { ErrorCode } from '@pai/client/protocol/error-code';
import { unsignedFailure } from '../protocol/reply-signer';

/** The peer broke Nest's `<length>#<json>` framing or sent a frame over the limit. */
export class FrameError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FrameError';
  }
}

const HASH = 0x23;
const DIGIT_0 = 0x30;
const DIGIT_9 = 0x39;
const MAX_LENGTH_DIGITS = 10;

export interface FramingLimits {
  /** Largest frame, as declared by the length prefix (UTF-16 code units, as Nest counts them). */
  readonly maxMessageChars: number;
  /** A frame must be whole this long after its first character arrives (at most twice this). */
  readonly frameTimeoutMs: number;
  /** A connection silent in both directions for this long is closed. */
  readonly idleTimeoutMs: number;
  /** Told of connections and requests in flight, for the graceful stop; optional in unit tests. */
  readonly tracker?: ConnectionTracker;
  /** What a connection must do to stay open; no such rule when absent (unit tests of framing). */
  readonly admission?: AdmissionRules;
}

/**
 * A connection costs the service a socket, a slot under PAI_MAX_CONNECTIONS and a reply per
 * message, whoever opened it: one that shows no key is closed early. Whether a request carried a
 * valid MAC is read off its reply, which is signed exactly when it did (docs/protocol.md 4).
 */
export interface AdmissionRules {
  /** This many replies in a row to unauthenticated messages (checks 1-3 failed) close it. */
  readonly maxUnverifiedInRow: number;
  /** No authenticated request this long after opening closes it. */
  readonly authTimeoutMs: number;
}

/** A verified request still running when the authentication time is up gets this much more. */
const AUTH_RECHECK_MS = 1_000;

/**
 * Nest's JsonSocket with docs/protocol.md 1 enforced before anything is buffered: each frame's
 * declared length (UTF-16 code units, as Nest counts them) is read as soon as its `#` arrives,
 * and a length over the limit, or a length that is not a plain decimal number, closes the
 * connection at once. Nest alone would keep buffering up to 128 M characters of a frame it will
 * never accept. A frame whose JSON is not an object closes the connection too; a request whose
 * pattern is not a string gets an unsigned BAD_REQUEST.
 *
 * Time limits: Nest's own incomplete-message timer restarts on every read, so a peer trickling one
 * byte a second holds a frame open forever; here a frame gets `frameTimeoutMs` from its first
 * character, however it trickles. Idle connections are closed after `idleTimeoutMs`.
 */
export function framedSocketClass(limits: FramingLimits): Type<TcpSocket> {
  const { maxMessageChars, frameTimeoutMs, idleTimeoutMs, tracker, admission } =
    limits;
  return class FramedJsonSocket
    extends JsonSocket
    implements TrackedConnection
  {
    private readonly decoder = new StringDecoder('utf8');
    private header = '';
    private remaining = 0;
    private framesCompleted = 0;
    private frameTimer?: NodeJS.Timeout;
    private authTimer?: NodeJS.Timeout;
    private verified = false;
    private unverifiedInRow = 0;
    /** Closed for its admission: nothing more is dispatched or written. */
    private refused = false;
    inFlight = 0;
    readonly remoteAddress: string | undefined;

    constructor(socket: Socket) {
      super(socket, {
        // Backstop only: frames are checked one by one below. A read holds at most 64 KiB of
        // pipelined frames on top of the one partial frame.
        maxBufferSize: maxMessageChars + 131_072,
        // Replaced by the whole-frame timer below (0 disables Nest's).
        incompleteMessageTimeout: 0,
        // Replies are small; a peer that sends requests and never reads their replies is cut off
        // at this much queued output instead of Nest's 128 MiB (reads pause well before, at the
        // socket's high-water mark).
        maxSendBufferSize: Math.max(1_048_576, 4 * maxMessageChars),
      });
      this.remoteAddress = socket.remoteAddress;
      socket.setTimeout(idleTimeoutMs);
      socket.on('timeout', () => socket.destroy());
      socket.on('close', () => {
        clearTimeout(this.frameTimer);
        clearTimeout(this.authTimer);
        tracker?.closed(this);
      });
      if (tracker && !tracker.opened(this)) {
        this.refused = true;
        socket.destroy();
        return;
      }
      if (admission) this.armAuthTimer(admission.authTimeoutMs);
    }

    private armAuthTimer(delayMs: number): void {
      this.authTimer = setTimeout(() => {
        if (this.verified || this.socket.destroyed) return;
        if (this.inFlight > 0) {
          this.armAuthTimer(AUTH_RECHECK_MS);
          return;
        }
        tracker?.closedForSilence();
        this.refuse();
      }, delayMs);
      this.authTimer.unref();
    }

    private refuse(): void {
      this.refused = true;
      this.socket.destroy();
    }

    /** Reads the reply's signature: signed exactly when the request's MAC verified. */
    private admit(message: unknown): void {
      if (!admission || !isJsonObject(message)) return;
      const reply = message.err ?? message.response;
      if (!isJsonObject(reply) || !('mac' in reply)) return;
      if (typeof reply.mac === 'string') {
        this.verified = true;
        this.unverifiedInRow = 0;
        clearTimeout(this.authTimer);
        return;
      }
      this.unverifiedInRow += 1;
      if (this.unverifiedInRow >= admission.maxUnverifiedInRow) {
        tracker?.closedForUnverified();
        this.refused = true;
        // The refusal just written goes out first; then the connection is gone.
        this.socket.end(() => this.socket.destroy());
      }
    }

    protected override handleData(data: Buffer | string): void {
      const text = typeof data === 'string' ? data : this.decoder.write(data);
      try {
        this.scan(text);
      } catch (error) {
        // Do not wait for a FIN from a peer that is already misbehaving.
        this.handleDataError(error);
        return;
      }
      if (this.midFrame() && !this.frameTimer) this.armFrameTimer();
      super.handleData(text);
    }

    private midFrame(): boolean {
      return this.remaining > 0 || this.header !== '';
    }

    /**
     * One timer per connection, not per frame (a frame per microsecond would otherwise mean a
     * timer per microsecond): when it fires, a frame that is still the one it was armed for has
     * had its time; a later frame gets a fresh period.
     */
    private armFrameTimer(): void {
      const armedAt = this.framesCompleted;
      this.frameTimer = setTimeout(() => {
        this.frameTimer = undefined;
        if (!this.midFrame()) return;
        if (this.framesCompleted !== armedAt) {
          this.armFrameTimer();
          return;
        }
        this.handleDataError(
          new FrameError(`frame not complete within ${frameTimeoutMs} ms`),
        );
      }, frameTimeoutMs);
      this.frameTimer.unref();
    }

    /** Walks the frame boundaries without copying: O(1) per body, O(digits) per header. */
    private scan(text: string): void {
      let i = 0;
      while (i < text.length) {
        if (this.remaining > 0) {
          const take = Math.min(this.remaining, text.length - i);
          this.remaining -= take;
          i += take;
          if (this.remaining === 0) this.framesCompleted += 1;
          continue;
        }
        const code = text.charCodeAt(i);
        if (code === HASH) {
          if (this.header === '') throw new FrameError('empty frame length');
          const declared = Number(this.header);
          this.header = '';
          if (declared > maxMessageChars) {
            throw new FrameError(
              `frame of ${declared} characters exceeds ${maxMessageChars}`,
            );
          }
          this.remaining = declared;
          if (declared === 0) this.framesCompleted += 1;
        } else if (
          code >= DIGIT_0 &&
          code <= DIGIT_9 &&
          this.header.length < MAX_LENGTH_DIGITS
        ) {
          this.header += text[i];
        } else {
          throw new FrameError('corrupt frame length');
        }
        i += 1;
      }
    }

    /** Nest only half-closes on a bad frame; a peer keeping its half open could go on sending. */
    protected override handleDataError(error: unknown): void {
      super.handleDataError(error, { destroy: true });
    }

    protected override emitMessage(data: string): void {
      if (this.refused) return;
      let message: unknown;
      try {
        message = JSON.parse(data);
      } catch {
        throw new FrameError('frame is not valid JSON');
      }
      if (!isJsonObject(message)) {
        throw new FrameError('frame is not a request object');
      }
      // Nest tells a request (it has an id) from an event (it has none) the same way.
      const isRequest = message.id !== undefined;
      // Stopping: a request not yet dispatched is not run and never acknowledged, so the client
      // can safely send it again elsewhere.
      if (isRequest && tracker?.isDraining) return;
      if (isRequest) {
        this.inFlight += 1;
        tracker?.requestStarted();
      }
      if (typeof message.pattern !== 'string') {
        // No MAC can cover a pattern that is not a string: refused unsigned (an event, which
        // expects no reply, is dropped).
        if (!isRequest) return;
        if (typeof message.id !== 'string' && typeof message.id !== 'number') {
          throw new FrameError('frame is a request with an invalid id');
        }
        this.sendMessage({
          id: message.id,
          err: unsignedFailure(ErrorCode.BAD_REQUEST, [
            { field: 'pattern', problem: 'must be a string' },
          ]),
          isDisposed: true,
        });
        return;
      }
      this.socket.emit('message', message);
    }

    protected override handleSend(
      message: unknown,
      callback?: (error?: Error | null) => void,
    ): void {
      if (!this.refused) {
        super.handleSend(message, callback);
        this.admit(message);
      }
      // Nest marks the last packet of each reply (one per request here) with isDisposed.
      if (
        this.inFlight > 0 &&
        isJsonObject(message) &&
        message.isDisposed === true
      ) {
        this.inFlight -= 1;
        tracker?.requestFinished(this);
      }
    }

    destroy(): void {
      this.socket.destroy();
    }
  };
}
