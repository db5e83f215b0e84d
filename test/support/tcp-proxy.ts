import { once } from 'node:events';
import { connect, createServer, type Server, type Socket } from 'node:net';

/**
 * A TCP relay between the service and its MySQL server that a test can take down, to play the
 * outages the service must survive:
 * - `down()`: the server is gone: open connections reset, new ones refused (nothing listens).
 * - `silent()`: a network partition: connections are accepted and never answered.
 * - `up()`: back to normal on the same port; connections held by `silent()` are reset.
 */
export class TcpProxy {
  private readonly sockets = new Set<Socket>();
  private server: Server;
  private mode: 'forward' | 'silent' = 'forward';

  private constructor(
    readonly port: number,
    private readonly target: { host: string; port: number },
    server: Server,
  ) {
    this.server = server;
  }

  static async start(target: { host: string; port: number }, port = 0) {
    const proxy = new TcpProxy(0, target, createServer());
    await proxy.listen(port);
    return proxy;
  }

  async up(): Promise<void> {
    this.mode = 'forward';
    this.resetAll();
    if (!this.server.listening) await this.listen(this.port);
  }

  async down(): Promise<void> {
    this.resetAll();
    if (this.server.listening) {
      const closed = once(this.server, 'close');
      this.server.close();
      await closed;
    }
  }

  silent(): void {
    this.mode = 'silent';
    this.resetAll();
  }

  async close(): Promise<void> {
    await this.down();
  }

  private async listen(port: number): Promise<void> {
    this.server = createServer((client) => this.accept(client));
    this.server.listen(port, '127.0.0.1');
    await once(this.server, 'listening');
    (this as { port: number }).port = (
      this.server.address() as { port: number }
    ).port;
  }

  private accept(client: Socket): void {
    this.track(client);
    if (this.mode === 'silent') return;
    const upstream = connect(this.target.port, this.target.host);
    this.track(upstream);
    client.pipe(upstream);
    upstream.pipe(client);
    const closeBoth = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('close', closeBoth);
    upstream.on('close', closeBoth);
  }

  private track(socket: Socket): void {
    this.sockets.add(socket);
    socket.on('error', () => undefined);
    socket.on('close', () => this.sockets.delete(socket));
  }

  private resetAll(): void {
    for (const socket of this.sockets) socket.resetAndDestroy();
    this.sockets.clear();
  }
}

/** The suite's DATABASE_URL routed through `proxy`. */
export function viaProxy(url: string, proxy: TcpProxy): string {
  const routed = new URL(url);
  routed.hostname = '127.0.0.1';
  routed.port = String(proxy.port);
  return routed.toString();
}
