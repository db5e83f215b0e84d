import { RecentResult } from './recent-result';

describe(RecentResult.name, () => {
  let now: number;
  let computations: number;
  let release: Array<(value: number) => void>;

  /** A computation that settles when the test says so, numbered in order of start. */
  function pending(): Promise<number> {
    computations += 1;
    return new Promise<number>((resolve) => release.push(resolve));
  }

  beforeEach(() => {
    now = 0;
    computations = 0;
    release = [];
  });

  it('should share one computation among every caller while it runs', async () => {
    const recent = new RecentResult(pending, 1_000, () => now);

    const callers = Array.from({ length: 100 }, () => recent.get());
    // Long past the age: a computation still running is never started twice.
    now = 5_000;
    callers.push(recent.get());
    release[0](42);

    expect(await Promise.all(callers)).toEqual(Array(101).fill(42));
    expect(computations).toBe(1);
  });

  it('should answer from the last result while it is younger than the age', async () => {
    const recent = new RecentResult(
      () => Promise.resolve(++computations),
      1_000,
      () => now,
    );

    expect(await recent.get()).toBe(1);
    now = 999;
    expect(await recent.get()).toBe(1);
    expect(computations).toBe(1);
  });

  it('should compute again once the last result is as old as the age, counted from its start', async () => {
    const recent = new RecentResult(pending, 1_000, () => now);

    const first = recent.get();
    now = 600;
    release[0](1);
    expect(await first).toBe(1);
    // 1 000 ms after the first computation started, though only 400 ms after it ended.
    now = 1_000;
    const second = recent.get();
    expect(computations).toBe(2);
    release[1](2);
    expect(await second).toBe(2);
    expect(await recent.get()).toBe(2);
  });

  it('should keep a failure like a result, and retry it once it is as old as the age', async () => {
    const failure = new Error('down');
    const recent = new RecentResult(
      () => {
        computations += 1;
        if (computations === 1) throw failure;
        return Promise.resolve('up');
      },
      1_000,
      () => now,
    );

    await expect(recent.get()).rejects.toBe(failure);
    now = 500;
    await expect(recent.get()).rejects.toBe(failure);
    expect(computations).toBe(1);
    now = 1_000;
    await expect(recent.get()).resolves.toBe('up');
    expect(computations).toBe(2);
  });
});
