import { SampledWarning } from './sampled-warning';

describe(SampledWarning.name, () => {
  let lines: string[];
  let warning: SampledWarning;

  beforeEach(() => {
    jest.useFakeTimers();
    lines = [];
    warning = new SampledWarning(
      { warn: (line) => lines.push(line) },
      (total) => `refused ${total} thing(s)`,
      1_000,
    );
  });

  afterEach(() => {
    jest.useRealTimers();
  });

  it('should log the first occurrence at once', () => {
    warning.record();

    expect(lines).toEqual(['refused 1 thing(s)']);
    expect(warning.recorded).toBe(1);
  });

  it('should log a flood in one window as two lines: the first and a count at its end', () => {
    for (let i = 0; i < 1_000; i += 1) warning.record();
    expect(lines).toHaveLength(1);

    jest.advanceTimersByTime(1_000);

    expect(lines).toEqual([
      'refused 1 thing(s)',
      'refused 1000 thing(s) (999 in the last 1 s)',
    ]);
    expect(warning.recorded).toBe(1_000);
  });

  it('should give a sustained flood one line per window, and stop when it stops', () => {
    for (let window = 0; window < 5; window += 1) {
      for (let i = 0; i < 100; i += 1) warning.record();
      jest.advanceTimersByTime(1_000);
    }
    jest.advanceTimersByTime(5_000);

    expect(lines).toHaveLength(6);
    expect(lines[5]).toBe('refused 500 thing(s) (100 in the last 1 s)');
  });

  it('should log the first occurrence after a quiet window at once', () => {
    warning.record();
    jest.advanceTimersByTime(1_000);
    warning.record();

    expect(lines).toEqual(['refused 1 thing(s)', 'refused 2 thing(s)']);
  });

  it("should let the caller log a window's first occurrence itself", () => {
    const own = jest.fn();
    warning.record(own);
    warning.record(own);
    jest.advanceTimersByTime(1_000);

    expect(own).toHaveBeenCalledTimes(1);
    expect(lines).toEqual(['refused 2 thing(s) (1 in the last 1 s)']);
  });
});
