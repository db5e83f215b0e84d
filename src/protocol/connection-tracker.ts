/** What the tracker needs from a connection: its requests in flight, and a graceful close. */
export interface TrackedConnection {
  readonly inFlight: number;
  /** Sends FIN once queued replies are flushed; the connection closes when the peer answers. */
  end(): void;
  destroy(): void;
}

export interface DrainResult {
  /** Every request dispatched before the drain delivered its reply. */
  readonly drained: boolean;
  /** Requests still without a reply when the drain timed out. */
  readonly abandoned: number;
  readonly elapsedMs: number;
}

/**
 * The service's open connections and the requests in flight on them, for a graceful stop.
 *
 * Nest's `ServerTCP.close()` destroys every open socket at once: a request that was running
 * commits, but its reply never reaches the client, which cannot tell an acknowledged transaction
 * from a lost one. Draining instead stops dispatching new messages, lets the running ones finish
 * and reply, closes each connection once it has nothing left in flight, and destroys only what is
 * left at the deadline.
 */
export class ConnectionTracker {
  private readonly connections = new Set<TrackedConnection>();
  private draining = false;
  private inFlightTotal = 0;
  private settle?: () => void;

  get open(): number {
    return this.connections.size;
  }

  get inFlight(): number {
    return this.inFlightTotal;
  }

  /** True once a drain began: messages that arrive now are not dispatched (never acknowledged). */
  get isDraining(): boolean {
    return this.draining;
  }

  opened(connection: TrackedConnection): void {
    this.connections.add(connection);
    if (this.draining) connection.end();
  }

  closed(connection: TrackedConnection): void {
    this.inFlightTotal -= connection.inFlight;
    this.connections.delete(connection);
    this.check();
  }

  requestStarted(): void {
    this.inFlightTotal += 1;
  }

  requestFinished(connection: TrackedConnection): void {
    this.inFlightTotal -= 1;
    if (this.draining && connection.inFlight === 0) connection.end();
    this.check();
  }

  /**
   * Resolves when every connection has closed (each after its last reply), or at `timeoutMs`,
   * when whatever is still open is destroyed.
   */
  async drain(timeoutMs: number): Promise<DrainResult> {
    const started = performance.now();
    this.draining = true;
    for (const connection of this.connections) {
      if (connection.inFlight === 0) connection.end();
    }
    let timer: NodeJS.Timeout | undefined;
    const finished = await new Promise<boolean>((resolve) => {
      this.settle = () => resolve(true);
      timer = setTimeout(() => resolve(false), timeoutMs);
      this.check();
    });
    clearTimeout(timer);
    this.settle = undefined;
    const abandoned = this.inFlightTotal;
    for (const connection of this.connections) connection.destroy();
    return {
      drained: finished || abandoned === 0,
      abandoned,
      elapsedMs: Math.round(performance.now() - started),
    };
  }

  private check(): void {
    if (this.settle && this.connections.size === 0) this.settle();
  }
}
