import { Logger } from '@nestjs/common';

/** Counts a repeated fault and logs its 1st, 2nd, 4th, 8th … occurrence: a peer cannot flood the log. */
export class SampledWarning {
  private count = 0;

  constructor(
    private readonly logger: Logger,
    private readonly describe: (count: number) => string,
  ) {}

  /** How many occurrences were recorded. */
  get recorded(): number {
    return this.count;
  }

  record(): void {
    this.count += 1;
    if ((this.count & (this.count - 1)) === 0)
      this.logger.warn(this.describe(this.count));
  }
}
