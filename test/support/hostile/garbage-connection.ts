import { once } from 'node:events';
import { connect, type Socket } from 'node:net';

/** A raw connection that records every reply frame and whether the server closed it. */
export class GarbageConnection {
  readonly replies: Record<string, unknown>[] = [];
  readonly replyErrors: string[] = [];
  private buffer = '';
  closedByServer = false;
  readonly closed: Promise<void>;

  private constructor(readonly socket: Socket) {
    socket.setEncoding('utf8');
    socket.setNoDelay(true);
    socket.on('error', () => undefined);
    socket.on('data', (chunk: string) => this.onData(chunk));
    socket.on('end', () => (this.closedByServer = true));
    this.closed = once(socket, 'close').then(() => undefined);
  }

  static async open(port: number): Promise<GarbageConnection> {
    const socket = connect(port, '127.0.0.1');
    await once(socket, 'connect');
    return new GarbageConnection(socket);
  }

  private onData(chunk: string): void {
    this.buffer += chunk;
    for (;;) {
      const hash = this.buffer.indexOf('#');
      if (hash < 0) return;
      const length = Number(this.buffer.slice(0, hash));
      if (!Number.isInteger(length)) {
        this.replyErrors.push('server sent a corrupt frame length');
        this.buffer = '';
        return;
      }
      if (this.buffer.length < hash + 1 + length) return;
      const body = this.buffer.slice(hash + 1, hash + 1 + length);
      this.buffer = this.buffer.slice(hash + 1 + length);
      try {
        this.replies.push(JSON.parse(body) as Record<string, unknown>);
      } catch {
        this.replyErrors.push('server sent invalid JSON');
      }
    }
  }
}
