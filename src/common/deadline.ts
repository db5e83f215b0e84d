/**
 * `work`, or a rejection with `onTimeout()`'s error when it has not settled within `ms`. The timer
 * is cleared either way, so it never keeps a process alive or fires late.
 */
export async function withTimeout<T>(
  work: Promise<T>,
  ms: number,
  onTimeout: () => Error,
): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      work,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(onTimeout()), Math.max(0, ms));
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** True when `work` settles, fulfilled or rejected, within `ms`; false when the time runs out. */
export function settlesWithin(
  work: Promise<unknown>,
  ms: number,
): Promise<boolean> {
  const settled = work.then(
    () => true,
    () => true,
  );
  return withTimeout(settled, ms, () => new TimedOut()).catch((error) => {
    if (error instanceof TimedOut) return false;
    throw error;
  });
}

class TimedOut extends Error {}
