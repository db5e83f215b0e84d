import { settlesWithin } from '../common/deadline';
import { SampledWarning, type WarningSink } from '../common/sampled-warning';
import type { DrainResult } from './drain';

/** What the tracker needs from a connection: its requests in flight, and a graceful close. */
export interface TrackedConnection {
  /** The peer's address; connections from one address are capped together. */
  readonly remoteAddress: string | undefined;
  readonly inFlight: number;
  /** Sends FIN once queued replies are flushed; the connection closes when the peer answers. */
  end(): void;
  destroy(): void;
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
  private readonly perAddress = new Map<string, number>();
  private draining = false;
  private inFlightTotal = 0;
  private settle?: () => void;
  private readonly overAddressCap: SampledWarning;
  private readonly unverifiedInRow: SampledWarning;
  private readonly silent: SampledWarning;

  /**
   * `maxPerAddress`: connections one address may hold open at once (0: no cap; behind a load
   * balancer every connection comes from its address, and the balancer caps per client).
   */
  constructor(
    private readonly maxPerAddress = 0,
    sink: WarningSink = { warn: () => undefined },
  ) {
    this.overAddressCap = new SampledWarning(
      sink,
      (total) =>
        `refused ${total} connection(s) over the PAI_MAX_CONNECTIONS_PER_ADDRESS cap of ${maxPerAddress}`,
    );
    this.unverifiedInRow = new SampledWarning(
      sink,
      (total) =>
        `closed ${total} connection(s) that sent too many unauthenticated messages in a row`,
    );
    this.silent = new SampledWarning(
      sink,
      (total) =>
        `closed ${total} connection(s) that sent no authenticated message in time`,
    );
  }

  /** Connections closed or refused by the admission rules, by reason, since the start. */
  get refusals(): {
    overAddressCap: number;
    unverifiedInRow: number;
    silent: number;
  } {
    return {
      overAddressCap: this.overAddressCap.recorded,
      unverifiedInRow: this.unverifiedInRow.recorded,
      silent: this.silent.recorded,
    };
  }

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

  /** False when the connection's address is over its cap: the caller destroys it. */
  opened(connection: TrackedConnection): boolean {
    const address = connection.remoteAddress ?? '';
    const held = this.perAddress.get(address) ?? 0;
    if (this.maxPerAddress > 0 && held >= this.maxPerAddress) {
      this.overAddressCap.record();
      return false;
    }
    this.perAddress.set(address, held + 1);
    this.connections.add(connection);
    if (this.draining) connection.end();
    return true;
  }

  closed(connection: TrackedConnection): void {
    if (!this.connections.delete(connection)) return;
    this.inFlightTotal -= connection.inFlight;
    const address = connection.remoteAddress ?? '';
    const held = (this.perAddress.get(address) ?? 1) - 1;
    if (held > 0) this.perAddress.set(address, held);
    else this.perAddress.delete(address);
    this.check();
  }

  /** A connection closed for sending too many unauthenticated messages in a row. */
  closedForUnverified(): void {
    this.unverifiedInRow.record();
  }

  /** A connection closed for sending no authenticated message within the time allowed. */
  closedForSilence(): void {
    this.silent.record();
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
    const allClosed = new Promise<void>((resolve) => {
      this.settle = resolve;
      this.check();
    });
    const finished = await settlesWithin(allClosed, timeoutMs);
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
