import type { Database } from '../database/database.service';
import { DatabaseRecord } from './database-record';

const WINDOW_MS = 300_000;
const T0 = 1_800_000_000_000;

const nonceOf = (i: number) => `nonce-${String(i).padStart(16, '0')}`;

describe(DatabaseRecord.name, () => {
  it('should write a pair again when InnoDB chose its INSERT as a deadlock victim', async () => {
    // What MySQL does when copies of one message reach several instances at once: an INSERT
    // that waited on another's lock is rolled back as a deadlock victim. SQLite cannot deadlock.
    const table = new Set<string>();
    let deadlocks = 0;
    const query = jest.fn((_sql: string, parameters: string[]) => {
      if (deadlocks > 0) {
        deadlocks -= 1;
        return Promise.reject(
          Object.assign(new Error('deadlock'), { code: 'ER_LOCK_DEADLOCK' }),
        );
      }
      const keys: string[] = [];
      for (let i = 0; i < parameters.length; i += 3) {
        keys.push(`${parameters[i]}:${parameters[i + 1]}`);
      }
      if (keys.some((key, i) => table.has(key) || keys.indexOf(key) !== i)) {
        return Promise.reject(
          Object.assign(new Error('duplicate'), { code: 'ER_DUP_ENTRY' }),
        );
      }
      keys.forEach((key) => table.add(key));
      return Promise.resolve([]);
    });
    const database = {
      dialect: 'mysql',
      run: <T>(work: (manager: unknown) => Promise<T>) => work({ query }),
    };
    const record = new DatabaseRecord(
      database as unknown as Database,
      { now: () => T0 },
      WINDOW_MS,
    );
    const verdict = async (nonce: string) =>
      (await record.record('a', nonce, T0)) ? 'OK' : 'REPLAY';

    deadlocks = 1; // a lone pair
    expect(await verdict(nonceOf(1))).toBe('OK');
    deadlocks = 3; // a batch of copies, then two of their own INSERTs
    const codes = await Promise.all(
      Array.from({ length: 4 }, () => verdict(nonceOf(2))),
    );
    expect(codes.sort()).toEqual(['OK', 'REPLAY', 'REPLAY', 'REPLAY']);
    deadlocks = 1;
    expect(await verdict(nonceOf(1))).toBe('REPLAY');
  });
});
