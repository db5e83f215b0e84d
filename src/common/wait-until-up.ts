import type { Logger } from '@nestjs/common';

const FIRST_RETRY_MS = 500;
const MAX_RETRY_MS = 30_000;

/** The pause before attempt `attempt + 1`: 0.5 s, doubling, at most 30 s. */
export function backoffMs(attempt: number): number {
  return Math.min(MAX_RETRY_MS, FIRST_RETRY_MS * 2 ** (attempt - 1));
}

export interface Dependency {
  /** What is waited for, as the log names it ("database", "NATS broker"). */
  readonly name: string;
  readonly logger: Pick<Logger, 'log' | 'warn'>;
  /** A failure that means "not up yet" (refused, timed out); anything else is thrown at once. */
  isTransient(error: unknown): boolean;
  /** The failure for the log: a driver code or message, never a URL or a credential. */
  describe(error: unknown): string;
}

/**
 * Runs `connect` until it succeeds. A dependency that is not up yet (started together with the
 * service, or restarting) is waited for, with exponential backoff and a log line per attempt, for
 * as long as it takes: an orchestrator's health check, not a crash loop, decides when that is too
 * long. Anything else (bad credentials, unknown database) fails at once. One policy for every
 * dependency the service needs at start: the database, the NATS broker, the Redis nonce record.
 */
export async function waitUntilUp<T>(
  dependency: Dependency,
  connect: (attempt: number) => Promise<T>,
  sleep: (ms: number) => Promise<unknown> = (ms) =>
    new Promise((resolve) => setTimeout(resolve, ms)),
): Promise<T> {
  for (let attempt = 1; ; attempt += 1) {
    try {
      const connected = await connect(attempt);
      if (attempt > 1) {
        dependency.logger.log(
          `${dependency.name} connected after ${attempt} attempts`,
        );
      }
      return connected;
    } catch (error) {
      if (!dependency.isTransient(error)) throw error;
      const delay = backoffMs(attempt);
      dependency.logger.warn(
        `${dependency.name} unreachable (${dependency.describe(error)}), attempt ${attempt}; retrying in ${delay} ms`,
      );
      await sleep(delay);
    }
  }
}
