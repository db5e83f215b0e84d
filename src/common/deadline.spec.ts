import { settlesWithin, withTimeout } from './deadline';

function useFakeTimers(): void {
  beforeEach(() => jest.useFakeTimers());
  afterEach(() => jest.useRealTimers());
}

describe(withTimeout.name, () => {
  useFakeTimers();

  it('should resolve with the work when it finishes in time', async () => {
    await expect(
      withTimeout(Promise.resolve(7), 100, () => new Error('late')),
    ).resolves.toBe(7);
  });

  it('should reject with the timeout error when the work is late', async () => {
    const late = withTimeout(
      new Promise(() => undefined),
      100,
      () => new Error('late'),
    );
    jest.advanceTimersByTime(100);

    await expect(late).rejects.toThrow('late');
  });

  it("should pass on the work's own rejection", async () => {
    await expect(
      withTimeout(
        Promise.reject(new Error('own')),
        100,
        () => new Error('late'),
      ),
    ).rejects.toThrow('own');
  });

  it('should leave no timer behind', async () => {
    await withTimeout(Promise.resolve(1), 100, () => new Error('late'));

    expect(jest.getTimerCount()).toBe(0);
  });
});

describe(settlesWithin.name, () => {
  useFakeTimers();

  it('should be true for work that settles in time, even by failing', async () => {
    await expect(settlesWithin(Promise.resolve(), 100)).resolves.toBe(true);
    await expect(
      settlesWithin(Promise.reject(new Error('x')), 100),
    ).resolves.toBe(true);
  });

  it('should be false for work still running at the deadline', async () => {
    const settled = settlesWithin(new Promise(() => undefined), 100);
    jest.advanceTimersByTime(100);

    await expect(settled).resolves.toBe(false);
  });
});
