import { Test } from '@nestjs/testing';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataSource } from 'typeorm';
import { dataSourceOptions } from '../../ormconfig';
import type { AppConfig } from '../config/config';
import { APP_CONFIG } from '../config/config';
import { Database } from '../database/database.service';
import { Health } from '../observability/health';
import { Metrics } from '../observability/metrics';
import { testConfig } from '../../test/support/config';
import { Clock } from '../common/clock';
import type { NonceVerdict } from './nonce-record';
import { NonceRecord } from './nonce-record';

const WINDOW_MS = 300_000;
const T0 = 1_800_000_000_000;

class ManualClock extends Clock {
  constructor(public time: number) {
    super();
  }
  now(): number {
    return this.time;
  }
}

const nonceOf = (i: number) => `nonce-${String(i).padStart(16, '0')}`;

/** The verdict as the guard answers it. */
async function codeOf(
  consumed: () => NonceVerdict | Promise<NonceVerdict>,
): Promise<'OK' | 'REPLAY' | 'STALE'> {
  const verdict = await consumed();
  if (verdict === 'replay') return 'REPLAY';
  if (verdict === 'stale') return 'STALE';
  return 'OK';
}

describe(NonceRecord.name, () => {
  let dataDir: string;
  const open: { dataSource: DataSource; store: NonceRecord }[] = [];

  beforeEach(() => {
    dataDir = mkdtempSync(join(tmpdir(), 'pai-nonce-'));
  });

  afterEach(async () => {
    for (const { dataSource, store } of open.splice(0)) {
      store.onModuleDestroy();
      await store.onApplicationShutdown();
      await dataSource.destroy();
    }
    rmSync(dataDir, { recursive: true, force: true });
  });

  /** What the record registers with the metrics: gauges by name, to read as a scrape would. */
  const gauges = new Map<string, () => Promise<number> | number>();
  const metrics = {
    gauge: (
      name: string,
      _help: string,
      read: () => Promise<number> | number,
    ) => gauges.set(name, read),
  };

  /** A store as the service builds it, on an SQLite file that outlives it (a "restart"). */
  async function startStore(
    clock: Clock,
    kind: 'memory' | 'database',
  ): Promise<NonceRecord> {
    const config: AppConfig = testConfig({
      macWindowMs: WINDOW_MS,
      nonceRecord: { kind },
    });
    const dataSource = await new DataSource(
      dataSourceOptions({ type: 'sqlite', file: join(dataDir, 'pai.sqlite') }),
    ).initialize();
    await dataSource.runMigrations();
    const moduleRef = await Test.createTestingModule({
      providers: [
        NonceRecord,
        { provide: APP_CONFIG, useValue: config },
        { provide: Clock, useValue: clock },
        { provide: DataSource, useValue: dataSource },
        Database,
        { provide: Health, useValue: { register: jest.fn() } },
        { provide: Metrics, useValue: metrics },
      ],
    }).compile();
    const store = moduleRef.get(NonceRecord);
    await store.onModuleInit();
    open.push({ dataSource, store });
    return store;
  }

  async function rows(): Promise<number> {
    const { dataSource } = open[open.length - 1];
    const [{ count }] = await dataSource.query<{ count: number }[]>(
      'SELECT COUNT(*) AS count FROM nonces_usados',
    );
    return Number(count);
  }

  describe('memory', () => {
    it('should accept a new pair without writing it to the database, and refuse it again', async () => {
      const clock = new ManualClock(T0);
      const store = await startStore(clock, 'memory');
      clock.time += 10;
      expect(await codeOf(() => store.consume('a', nonceOf(1), T0 + 5))).toBe(
        'OK',
      );
      expect(await codeOf(() => store.consume('a', nonceOf(1), T0 + 5))).toBe(
        'REPLAY',
      );
      expect(store.memoryHeld).toBe(1);
      expect(await rows()).toBe(0);
    });

    it('should accept exactly one of many copies arriving at once', async () => {
      const clock = new ManualClock(T0);
      const store = await startStore(clock, 'memory');
      clock.time += 10;
      const codes = await Promise.all(
        Array.from({ length: 24 }, () =>
          codeOf(() => store.consume('a', nonceOf(1), T0 + 5)),
        ),
      );
      expect(codes.filter((code) => code === 'OK')).toHaveLength(1);
      expect(codes.filter((code) => code === 'REPLAY')).toHaveLength(23);
    });

    it('should refuse, after a restart, a message the previous process accepted, as STALE', async () => {
      const clock = new ManualClock(T0);
      const first = await startStore(clock, 'memory');
      clock.time += 1_000;
      const ts = clock.time - 100;
      expect(await codeOf(() => first.consume('a', nonceOf(1), ts))).toBe('OK');

      clock.time += 2_000;
      const restarted = await startStore(clock, 'memory');
      clock.time += 1_000;
      expect(await codeOf(() => restarted.consume('a', nonceOf(1), ts))).toBe(
        'STALE',
      );
      // A message signed after the restart is accepted.
      expect(
        await codeOf(() => restarted.consume('a', nonceOf(2), clock.time)),
      ).toBe('OK');
    });

    it('should refuse, after a restart, a message dated in the future that the previous process accepted', async () => {
      const clock = new ManualClock(T0);
      const first = await startStore(clock, 'memory');
      const ts = T0 + 60_000;
      expect(await codeOf(() => first.consume('a', nonceOf(1), ts))).toBe('OK');
      expect(await rows()).toBe(1);

      clock.time += 10_000;
      const restarted = await startStore(clock, 'memory');
      clock.time += 10_000;
      // Still in the future here, and in the past later: the table answers both times.
      expect(await codeOf(() => restarted.consume('a', nonceOf(1), ts))).toBe(
        'REPLAY',
      );
      clock.time = ts + 1_000;
      const again = await startStore(clock, 'memory');
      clock.time += 10;
      expect(await codeOf(() => again.consume('a', nonceOf(1), ts))).toBe(
        'STALE',
      );
      expect(await codeOf(() => restarted.consume('a', nonceOf(1), ts))).toBe(
        'REPLAY',
      );
    });
  });

  describe('database', () => {
    it('should write pairs arriving together and tell each waiter whether its pair was new', async () => {
      const clock = new ManualClock(T0);
      const store = await startStore(clock, 'database');
      expect(await codeOf(() => store.consume('a', nonceOf(0), T0))).toBe('OK');
      const codes = await Promise.all([
        ...Array.from({ length: 30 }, (_, i) =>
          codeOf(() => store.consume('a', nonceOf(i + 1), T0)),
        ),
        ...Array.from({ length: 8 }, () =>
          codeOf(() => store.consume('a', nonceOf(100), T0)),
        ),
        codeOf(() => store.consume('a', nonceOf(0), T0)),
      ]);
      expect(codes.slice(0, 30)).toEqual(Array(30).fill('OK'));
      expect(codes.slice(30, 38).filter((code) => code === 'OK')).toHaveLength(
        1,
      );
      expect(codes[38]).toBe('REPLAY');
      expect(await rows()).toBe(32);
      expect(store.memoryHeld).toBe(0);
    });

    it('should refuse a pair accepted before a restart with REPLAY', async () => {
      const clock = new ManualClock(T0);
      const first = await startStore(clock, 'database');
      expect(await codeOf(() => first.consume('a', nonceOf(1), T0))).toBe('OK');
      clock.time += 1_000;
      const restarted = await startStore(clock, 'database');
      expect(await codeOf(() => restarted.consume('a', nonceOf(1), T0))).toBe(
        'REPLAY',
      );
    });
  });

  describe('the gauge of pairs held', () => {
    it('should read the memory record as it is', async () => {
      const clock = new ManualClock(T0);
      const store = await startStore(clock, 'memory');
      clock.time += 10;
      await store.consume('a', nonceOf(1), T0 + 5);

      expect(await gauges.get('pai_nonce_records')!()).toBe(1);
    });

    it("should count the table's rows at most once per second, however often it is scraped", async () => {
      const clock = new ManualClock(T0);
      const store = await startStore(clock, 'database');
      clock.time += 10;
      await store.consume('a', nonceOf(1), T0 + 5);
      const read = gauges.get('pai_nonce_records')!;

      expect(await Promise.all([read(), read(), read()])).toEqual([1, 1, 1]);
      await store.consume('a', nonceOf(2), T0 + 5);
      expect(await read()).toBe(1);
    });
  });
});
