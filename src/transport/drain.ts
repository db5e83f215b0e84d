import type { Logger } from '@nestjs/common';

/** What a graceful stop achieved (logged, and read by tests). */
export interface DrainResult {
  /** Every request dispatched before the drain delivered its reply. */
  readonly drained: boolean;
  /** Requests still without a reply when the drain timed out. */
  readonly abandoned: number;
  readonly elapsedMs: number;
}

/** One line when the stop had requests to wait for or cut off; nothing for an idle stop. */
export function logDrain(
  logger: Logger,
  inFlightAtStart: number,
  result: DrainResult,
): void {
  if (inFlightAtStart === 0 && result.drained) return;
  const outcome = result.drained
    ? `all ${inFlightAtStart} request(s) in flight replied`
    : `${result.abandoned} request(s) still running were cut off at the drain timeout`;
  logger.log(`stopped in ${result.elapsedMs} ms: ${outcome}`);
}
