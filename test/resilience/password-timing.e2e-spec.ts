import { performance } from 'node:perf_hooks';
import { registerAtCost } from '../support/accounts';
import { codeOf } from '../support/failure';
import { e2eTransport } from '../support/test-app';
import { databaseKind } from '../support/test-database';
import { useTestDatabase } from '../support/use-test-app';

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2
    ? sorted[middle]
    : (sorted[middle - 1] + sorted[middle]) / 2;
}

/**
 * A login refused for a wrong password must take as long as one refused for an unknown user, also
 * for hashes stored at an older PAI_BCRYPT_COST: else the time tells which usernames exist. It
 * measures time, so it runs with the resilience suites (docs/testing.md).
 */
describe(`refusal times after a change of PAI_BCRYPT_COST over ${e2eTransport} (${databaseKind})`, () => {
  const database = useTestDatabase();

  it('should take as long to refuse a wrong password at the old cost as an unknown user', async () => {
    // Each user is tried once, far from the throttle's lock; the first two pairs warm up.
    const pairs = 24;
    const warmUp = 2;
    const existing = Array.from({ length: pairs }, (_, i) => `known-${i}`);
    await registerAtCost(database, 10, existing);
    const service = await database.start({ bcryptCost: 11 });
    const client = service.client();
    const timed = async (username: string): Promise<number> => {
      const start = performance.now();
      const code = await codeOf(
        client.send('auth.login', { username, password: 'wrong horse' }),
      );
      const elapsed = performance.now() - start;
      expect(code).toBe('INVALID_CREDENTIALS');
      return elapsed;
    };

    const existingMs: number[] = [];
    const unknownMs: number[] = [];
    // Interleaved, and in alternating order, so that load from elsewhere on the machine falls on
    // both kinds alike.
    for (let i = 0; i < pairs; i += 1) {
      const unknown = `unknown-${i}`;
      let known: number;
      let absent: number;
      if (i % 2 === 0) {
        known = await timed(existing[i]);
        absent = await timed(unknown);
      } else {
        absent = await timed(unknown);
        known = await timed(existing[i]);
      }
      if (i < warmUp) continue;
      existingMs.push(known);
      unknownMs.push(absent);
    }

    // Each pair ran back to back, so the median of the pairs' own ratios discounts load that
    // came and went during the test. Before a cost change is handled, the ratio is 0.26-0.49.
    const ratios = existingMs.map((known, i) => known / unknownMs[i]);
    const figures = {
      existingMs: Math.round(median(existingMs)),
      unknownMs: Math.round(median(unknownMs)),
      ratio: Number(median(ratios).toFixed(2)),
    };
    // The figures show in the diff when this fails.
    expect({
      ...figures,
      alike: figures.ratio >= 0.75 && figures.ratio <= 1.33,
    }).toEqual({ ...figures, alike: true });
  }, 120_000);
});
