import { setTimeout as sleep } from 'node:timers/promises';

type Truthy<T> = Exclude<T, false | 0 | '' | null | undefined>;

/**
 * Resolves, with its value, once `condition` returns something truthy: checked at once, then every
 * `intervalMs`. Rejects after `timeoutMs` saying what it waited for (`what` may be a function, to
 * describe the last state seen). The one way the tests wait for something to happen; a fixed sleep
 * is left only where time itself is what a test is about, and says so.
 */
export async function waitFor<T>(
  what: string | (() => string),
  condition: () => T | Promise<T>,
  { timeoutMs = 10_000, intervalMs = 20 } = {},
): Promise<Truthy<T>> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const value = await condition();
    if (value) return value as Truthy<T>;
    if (performance.now() >= deadline) {
      const described = typeof what === 'function' ? what() : what;
      throw new Error(`waited ${timeoutMs} ms in vain for ${described}`);
    }
    await sleep(intervalMs);
  }
}
