/**
 * The result of an expensive computation (a health check, a count), computed at most once per
 * `maxAgeMs` however many callers ask: a caller gets the computation in flight if there is one,
 * else the last result while it was started less than `maxAgeMs` ago, else a new computation.
 * A failure is kept like a result, so a flood of callers cannot turn a failing dependency into a
 * stream of retries.
 *
 * The age counts from the start of a computation: its result says how things were then, and one
 * that took longer than `maxAgeMs` is stale on arrival (the next caller starts another; still
 * never two at once).
 *
 * Terminus' `cacheFor` does the like for one indicator's attempt only, not for its TypeORM ping,
 * the whole readiness answer or a metric; hence this.
 */
export class RecentResult<T> {
  private latest?: { promise: Promise<T>; startedAt: number; settled: boolean };

  constructor(
    private readonly compute: () => Promise<T>,
    private readonly maxAgeMs: number,
    private readonly now: () => number = () => performance.now(),
  ) {}

  get(): Promise<T> {
    const latest = this.latest;
    if (
      latest &&
      (!latest.settled || this.now() - latest.startedAt < this.maxAgeMs)
    ) {
      return latest.promise;
    }
    const startedAt = this.now();
    // Through an async function: a compute that throws at once is kept as a rejection too.
    const promise = (async () => this.compute())();
    const entry = { promise, startedAt, settled: false };
    const settle = () => (entry.settled = true);
    promise.then(settle, settle);
    this.latest = entry;
    return promise;
  }
}
