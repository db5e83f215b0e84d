/** Where a sampled warning goes: a Nest Logger or a pino logger both fit. */
export interface WarningSink {
  warn(message: string): void;
}

const DEFAULT_WINDOW_MS = 10_000;

/**
 * A repeated fault, logged at most twice per window: its first occurrence at once, and at the
 * window's end one line saying how many more followed (while they go on, one such line per
 * window). A peer cannot flood the log, and an operator still sees when a fault started, how
 * often it happens and when it stopped.
 */
export class SampledWarning {
  private total = 0;
  private sinceLine = 0;
  private window?: NodeJS.Timeout;

  constructor(
    private readonly sink: WarningSink,
    /** The line for `total` occurrences so far. */
    private readonly describe: (total: number) => string,
    private readonly windowMs = DEFAULT_WINDOW_MS,
  ) {}

  /** How many occurrences were recorded. */
  get recorded(): number {
    return this.total;
  }

  /**
   * Counts one occurrence. The first of a window is logged at once: by `logFirst` when given (a
   * line of the caller's own, with its fields), else with the describe line.
   */
  record(logFirst?: () => void): void {
    this.total += 1;
    if (this.window) {
      this.sinceLine += 1;
      return;
    }
    if (logFirst) logFirst();
    else this.sink.warn(this.describe(this.total));
    this.openWindow();
  }

  private openWindow(): void {
    this.window = setTimeout(() => {
      this.window = undefined;
      if (this.sinceLine === 0) return;
      const more = this.sinceLine;
      this.sinceLine = 0;
      this.sink.warn(
        `${this.describe(this.total)} (${more} in the last ${this.windowMs / 1_000} s)`,
      );
      this.openWindow();
    }, this.windowMs);
    // A warning that is still counting must not keep the process alive.
    this.window.unref();
  }
}
