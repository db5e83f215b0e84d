import { Batcher, settle } from './batcher';

describe(Batcher.name, () => {
  it('should process items submitted in one turn of the event loop as one batch, each getting its own outcome', async () => {
    const batches: number[][] = [];
    const batcher = new Batcher<number, string>(
      (items) => {
        batches.push([...items]);
        return Promise.resolve(
          items.map((item): PromiseSettledResult<string> =>
            item % 2
              ? { status: 'fulfilled', value: `odd ${item}` }
              : { status: 'rejected', reason: new Error(`even ${item}`) },
          ),
        );
      },
      { maxBatch: 100, maxInFlight: 1 },
    );

    const outcomes = await Promise.all(
      [1, 2, 3].map((item) => settle(() => batcher.submit(item))),
    );

    expect(batches).toEqual([[1, 2, 3]]);
    expect(outcomes).toEqual([
      { status: 'fulfilled', value: 'odd 1' },
      { status: 'rejected', reason: new Error('even 2') },
      { status: 'fulfilled', value: 'odd 3' },
    ]);
  });

  it('should split what exceeds the batch size, and keep at most maxInFlight batches running', async () => {
    let running = 0;
    let mostRunning = 0;
    const sizes: number[] = [];
    const batcher = new Batcher<number, number>(
      async (items) => {
        running += 1;
        mostRunning = Math.max(mostRunning, running);
        sizes.push(items.length);
        await new Promise((resolve) => setImmediate(resolve));
        running -= 1;
        return items.map((value) => ({ status: 'fulfilled', value }));
      },
      { maxBatch: 4, maxInFlight: 2 },
    );

    const values = await Promise.all(
      Array.from({ length: 10 }, (_, i) => batcher.submit(i)),
    );

    expect(values).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(sizes.reduce((sum, size) => sum + size, 0)).toBe(10);
    expect(Math.max(...sizes)).toBe(4);
    expect(mostRunning).toBe(2);
    expect(batcher.pending).toBe(0);
  });

  it('should fail every item of a batch whose processing throws, and go on with the next', async () => {
    let calls = 0;
    const batcher = new Batcher<number, number>(
      (items) => {
        calls += 1;
        if (calls === 1) return Promise.reject(new Error('connection lost'));
        return Promise.resolve(
          items.map((value) => ({ status: 'fulfilled', value })),
        );
      },
      { maxBatch: 10, maxInFlight: 1 },
    );

    const first = await Promise.all(
      [1, 2].map((item) => settle(() => batcher.submit(item))),
    );
    expect(first.map((outcome) => outcome.status)).toEqual([
      'rejected',
      'rejected',
    ]);
    await expect(batcher.submit(3)).resolves.toBe(3);
  });
});
