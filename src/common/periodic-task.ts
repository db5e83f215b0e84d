import { Logger } from '@nestjs/common';

/**
 * Runs `task` every `everyMs` until stopped. A failure is logged and the next run goes ahead (a
 * database that is briefly away must not end the housekeeping); runs never overlap; the timer
 * does not keep the process alive.
 */
export function startPeriodicTask(
  name: string,
  everyMs: number,
  task: () => Promise<unknown>,
  logger: Logger,
): () => void {
  let running = false;
  const timer = setInterval(() => {
    if (running) return;
    running = true;
    task()
      .catch((error: unknown) =>
        logger.warn(`${name} failed: ${(error as Error).message}`),
      )
      .finally(() => (running = false));
  }, everyMs);
  timer.unref();
  return () => clearInterval(timer);
}
