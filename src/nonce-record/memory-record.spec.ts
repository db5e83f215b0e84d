import { MemoryRecord } from './memory-record';

const WINDOW_MS = 300_000;
const GENERATION_MS = WINDOW_MS / 4;
const T0 = 1_800_000_000_000;

const nonceOf = (i: number) => `nonce-${String(i).padStart(16, '0')}`;

describe(MemoryRecord.name, () => {
  it('should refuse a pair it accepted, and accept the same nonce under another kid', () => {
    const record = new MemoryRecord(WINDOW_MS);
    expect(record.accept('a', nonceOf(1), T0, T0)).toBe(true);
    expect(record.accept('a', nonceOf(1), T0, T0)).toBe(false);
    expect(record.accept('b', nonceOf(1), T0, T0)).toBe(true);
    expect(record.accept('a', nonceOf(2), T0, T0)).toBe(true);
    expect(record.size).toBe(3);
  });

  it('should keep a pair for as long as its message is fresh, the last millisecond included', () => {
    const record = new MemoryRecord(WINDOW_MS);
    const ts = T0 - 1234;
    expect(record.accept('a', nonceOf(1), ts, T0)).toBe(true);
    for (let now = T0, step = 0; now <= ts + WINDOW_MS; now += 997, step += 1) {
      // Messages at the far edge of the window make older generations expire all along.
      record.accept('b', nonceOf(step), now - WINDOW_MS, now);
      expect(record.accept('a', nonceOf(1), ts, now)).toBe(false);
    }
    expect(record.accept('a', nonceOf(1), ts, ts + WINDOW_MS)).toBe(false);
  });

  it('should drop pairs once their messages are past the window, so the record stays bounded', () => {
    const record = new MemoryRecord(WINDOW_MS);
    // Ten windows of steady traffic, one message a second.
    for (let second = 0; second < (10 * WINDOW_MS) / 1000; second += 1) {
      const now = T0 + second * 1000;
      expect(record.accept('a', nonceOf(second), now, now)).toBe(true);
    }
    // Held: the window's messages plus at most one generation more.
    expect(record.size).toBeGreaterThanOrEqual(WINDOW_MS / 1000);
    expect(record.size).toBeLessThanOrEqual(
      (WINDOW_MS + GENERATION_MS) / 1000 + 1,
    );
  });

  it('should hold many pairs without refusing a new one', () => {
    const record = new MemoryRecord(WINDOW_MS);
    for (let i = 0; i < 50_000; i += 1) {
      expect(record.accept('a', nonceOf(i), T0, T0)).toBe(true);
    }
    expect(record.size).toBe(50_000);
    expect(record.accept('a', nonceOf(49_999), T0, T0)).toBe(false);
  });
});
