import { RawClient } from '../raw-client';

/**
 * Sends many requests over a few long-lived connections, `window` in flight on each, as a busy
 * client would pipeline them. Resolves each request with its reply.
 */
export class Pipeline {
  private constructor(
    private readonly clients: RawClient[],
    private readonly window: number,
  ) {}

  static async open(port: number, connections = 4, window = 64) {
    const clients = await Promise.all(
      Array.from({ length: connections }, () => RawClient.connect(port)),
    );
    return new Pipeline(clients, window);
  }

  /** Runs `send` for every item, spread over the connections, at most `window` at once on each. */
  async run<T>(
    items: T[],
    send: (client: RawClient, item: T) => Promise<void>,
  ): Promise<void> {
    let next = 0;
    await Promise.all(
      this.clients.map(async (client) => {
        const inflight = new Set<Promise<void>>();
        while (next < items.length) {
          const item = items[next++];
          const done: Promise<void> = send(client, item).finally(() =>
            inflight.delete(done),
          );
          inflight.add(done);
          if (inflight.size >= this.window) await Promise.race(inflight);
        }
        await Promise.all(inflight);
      }),
    );
  }

  /** Sends an event: a frame with no `id`, to which nothing is answered. */
  static event(client: RawClient, pattern: string, data: unknown): void {
    client.writeFrame({ pattern, data });
  }

  close(): void {
    for (const client of this.clients) client.close();
  }
}
