import { FREE_FAILURES, lockDurationMs } from './login-throttle.service';

describe(lockDurationMs.name, () => {
  const CAP_MS = 15 * 60_000;

  it('should not lock below 5 failures', () => {
    expect(FREE_FAILURES).toBe(5);
    for (let failures = 0; failures < 5; failures++) {
      expect(lockDurationMs(failures)).toBe(0);
    }
  });

  it('should lock for 1 second at the 5th failure', () => {
    expect(lockDurationMs(5)).toBe(1_000);
  });

  it('should double the lock with each further failure', () => {
    expect(lockDurationMs(6)).toBe(2_000);
    expect(lockDurationMs(7)).toBe(4_000);
    for (let failures = 6; failures <= 14; failures++) {
      expect(lockDurationMs(failures)).toBe(2 * lockDurationMs(failures - 1));
    }
    expect(lockDurationMs(14)).toBe(512_000);
  });

  it('should cap the lock at 15 minutes', () => {
    expect(lockDurationMs(15)).toBe(CAP_MS);
    expect(lockDurationMs(16)).toBe(CAP_MS);
    expect(lockDurationMs(100)).toBe(CAP_MS);
  });

  it.each([35, 36, 1_100, 10_000, 1_000_000, Number.MAX_SAFE_INTEGER])(
    'should give a finite capped lock for %d failures',
    (failures) => {
      const lock = lockDurationMs(failures);

      expect(Number.isFinite(lock)).toBe(true);
      expect(lock).toBe(CAP_MS);
    },
  );
});
