import type { Type } from '@nestjs/common';
import { JsonSocket, TcpSocket } from '@nestjs/microservices';
import type { Socket } from 'node:net';
import { StringDecoder } from 'node:string_decoder';
import { isJsonObject } from './envelope';

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

/**
 * Nest's JsonSocket with PROTOCOL.md 1 enforced before anything is buffered: each frame's declared
 * length (UTF-16 code units, as Nest counts them) is read as soon as its `#` arrives, and a length
 * over the limit, or a length that is not a plain decimal number, closes the connection at once.
 * Nest alone would keep buffering up to 128 M characters of a frame it will never accept.
 * A frame whose JSON is not a request object closes the connection too.
 */
export function framedSocketClass(maxMessageChars: number): Type<TcpSocket> {
  return class FramedJsonSocket extends JsonSocket {
    private readonly decoder = new StringDecoder('utf8');
    private header = '';
    private remaining = 0;

    constructor(socket: Socket) {
      super(socket, {
        // Backstop only: frames are checked one by one below. A read holds at most 64 KiB of
        // pipelined frames on top of the one partial frame.
        maxBufferSize: maxMessageChars + 131_072,
      });
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
      super.handleData(text);
    }

    /** Walks the frame boundaries without copying: O(1) per body, O(digits) per header. */
    private scan(text: string): void {
      let i = 0;
      while (i < text.length) {
        if (this.remaining > 0) {
          const take = Math.min(this.remaining, text.length - i);
          this.remaining -= take;
          i += take;
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
      let message: unknown;
      try {
        message = JSON.parse(data);
      } catch {
        throw new FrameError('frame is not valid JSON');
      }
      if (!isJsonObject(message) || typeof message.pattern !== 'string') {
        throw new FrameError(
          'frame is not a request object with a string pattern',
        );
      }
      this.socket.emit('message', message);
    }
  };
}
