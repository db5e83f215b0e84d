import { setImmediate } from 'node:timers';

export interface BatchLimits {
  /** Items in one batch at most. */
  maxBatch: number;
  /** Batches being processed at once at most; later items wait for the next free one. */
  maxInFlight: number;
}

interface Waiting<I, O> {
  item: I;
  resolve: (outcome: O) => void;
  reject: (error: unknown) => void;
}

/**
 * Group commit: items submitted while the event loop handles one I/O phase (every message read
 * from the sockets in it) are processed together, so many requests share one database round trip
 * and one commit. `process` settles each item for itself, in the order given; a batch that
 * throws fails each of its items with that error.
 */
export class Batcher<I, O> {
  private waiting: Waiting<I, O>[] = [];
  private flushScheduled = false;
  private inFlight = 0;

  constructor(
    private readonly process: (
      items: readonly I[],
    ) => Promise<readonly PromiseSettledResult<O>[]>,
    private readonly limits: BatchLimits,
  ) {}

  submit(item: I): Promise<O> {
    return new Promise<O>((resolve, reject) => {
      this.waiting.push({ item, resolve, reject });
      this.scheduleFlush();
    });
  }

  /** Items waiting or being processed. */
  get pending(): number {
    return this.waiting.length + this.inFlight;
  }

  private scheduleFlush(): void {
    if (this.flushScheduled || this.inFlight >= this.limits.maxInFlight) return;
    this.flushScheduled = true;
    // After the current I/O phase, so that everything read in it joins the batch.
    setImmediate(() => {
      this.flushScheduled = false;
      void this.flush();
    });
  }

  private async flush(): Promise<void> {
    const batch = this.waiting.splice(0, this.limits.maxBatch);
    if (batch.length === 0) return;
    this.inFlight += 1;
    if (this.waiting.length > 0) this.scheduleFlush();
    try {
      const outcomes = await this.process(batch.map((entry) => entry.item));
      batch.forEach((entry, index) => {
        const outcome = outcomes[index];
        if (outcome?.status === 'fulfilled') entry.resolve(outcome.value);
        else
          entry.reject(
            outcome ? outcome.reason : new Error('batch gave no outcome'),
          );
      });
    } catch (error) {
      batch.forEach((entry) => entry.reject(error));
    } finally {
      this.inFlight -= 1;
      if (this.waiting.length > 0) this.scheduleFlush();
    }
  }
}

/** The outcome of an item processed alone, for a batch's fallback. */
export function settle<O>(
  work: () => Promise<O>,
): Promise<PromiseSettledResult<O>> {
  return work().then(
    (value) => ({ status: 'fulfilled', value }),
    (reason: unknown) => ({ status: 'rejected', reason }),
  );
}
