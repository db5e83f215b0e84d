import type { ModuleRef } from '@nestjs/core';
import { testConfig } from '../../test/support/config';
import type { Database } from '../database/database.service';
import { Registry } from 'prom-client';
import {
  Metrics,
  NONCE_COUNT_MAX_AGE_MS,
  PROCESS_METRICS_MAX_AGE_MS,
} from './metrics';

const http = { host: '127.0.0.1', port: 0 };

function metricsWith(
  config = testConfig({}, { http }),
  database: Partial<Database> = { run: () => Promise.resolve(7) as never },
  memoryHeld = 0,
): Metrics {
  const moduleRef = { get: () => ({ memoryHeld }) } as unknown as ModuleRef;
  return new Metrics(config, database as Database, moduleRef);
}

async function value(metrics: Metrics, name: string, labels = {}) {
  const metric = await metrics.registry.getSingleMetric(name)!.get();
  return metric.values.find(
    (v) => JSON.stringify(v.labels) === JSON.stringify(labels),
  )?.value;
}

describe(Metrics.name, () => {
  it('should count requests by pattern and code, and rejections by reason', async () => {
    const metrics = metricsWith();

    metrics.recordRequest('system.ping', 'OK', 0.002, undefined);
    metrics.recordRequest('system.ping', 'OK', 0.003, undefined);
    metrics.recordRequest('system.ping', 'STALE', 0.001, 'STALE');

    expect(
      await value(metrics, 'pai_requests_total', {
        pattern: 'system.ping',
        code: 'OK',
      }),
    ).toBe(2);
    expect(
      await value(metrics, 'pai_rejections_total', { reason: 'STALE' }),
    ).toBe(1);
    const text = await metrics.registry.metrics();
    expect(text).toContain(
      'pai_request_duration_seconds_count{pattern="system.ping"} 3',
    );
  });

  it('should record nothing when the side port is off', async () => {
    const metrics = metricsWith(testConfig({}));

    metrics.recordRequest('system.ping', 'OK', 0.002, undefined);

    expect(await metrics.registry.metrics()).not.toContain(
      'pai_requests_total{',
    );
  });

  it("should collect Node's process metrics at most once per second, and the service's series at every scrape", async () => {
    jest.useFakeTimers();
    try {
      const metrics = metricsWith();
      metrics.collectProcessMetrics();
      const render = jest.spyOn(Registry.prototype, 'metrics');
      const processRenders = () =>
        render.mock.contexts.filter((r) => r !== metrics.registry).length;

      const first = await Promise.all(
        Array.from({ length: 20 }, () => metrics.exposition()),
      );
      metrics.recordRequest('system.ping', 'OK', 0.002, undefined);
      jest.advanceTimersByTime(PROCESS_METRICS_MAX_AGE_MS - 1);
      const fresh = await metrics.exposition();

      expect(first[0]).toContain('process_cpu_user_seconds_total');
      expect(first[0]).not.toContain('pai_requests_total{');
      expect(fresh).toContain(
        'pai_requests_total{pattern="system.ping",code="OK"} 1',
      );
      expect(fresh).toContain('process_cpu_user_seconds_total');
      expect(processRenders()).toBe(1);

      jest.advanceTimersByTime(1);
      await metrics.exposition();
      expect(processRenders()).toBe(2);
      render.mockRestore();
    } finally {
      jest.useRealTimers();
    }
  });

  describe('the nonce table', () => {
    beforeEach(() => {
      jest.useFakeTimers();
    });
    afterEach(() => {
      jest.useRealTimers();
    });

    it('should be counted at most once per second however often it is scraped, and be NaN when the database fails', async () => {
      let rows = 7;
      let counts = 0;
      const metrics = metricsWith(
        testConfig({}, { http, nonceStore: 'database' }),
        {
          run: (() => {
            counts += 1;
            return rows < 0
              ? Promise.reject(new Error('ECONNREFUSED'))
              : Promise.resolve(rows);
          }) as Database['run'],
        },
      );

      const scrapes = await Promise.all(
        Array.from({ length: 20 }, () => metrics.registry.metrics()),
      );
      expect(
        scrapes.every((text) => text.includes('pai_nonce_records 7')),
      ).toBe(true);
      rows = 9;
      jest.advanceTimersByTime(NONCE_COUNT_MAX_AGE_MS - 1);
      expect(await value(metrics, 'pai_nonce_records')).toBe(7);
      expect(counts).toBe(1);

      jest.advanceTimersByTime(1);
      expect(await value(metrics, 'pai_nonce_records')).toBe(9);
      expect(counts).toBe(2);

      rows = -1;
      jest.advanceTimersByTime(NONCE_COUNT_MAX_AGE_MS);
      expect(await value(metrics, 'pai_nonce_records')).toBeNaN();
      expect(await value(metrics, 'pai_nonce_records')).toBeNaN();
      expect(counts).toBe(3);
    });
  });

  it('should read an in-memory nonce record from the store, not the database', async () => {
    const metrics = metricsWith(
      testConfig({}, { http, nonceStore: 'memory' }),
      { run: () => Promise.reject(new Error('not asked')) },
      42,
    );

    expect(await value(metrics, 'pai_nonce_records')).toBe(42);
  });

  it('should report no connections before a TCP server is tracked', async () => {
    const metrics = metricsWith();
    expect(await value(metrics, 'pai_tcp_connections')).toBe(0);
    expect(metrics.serverReceiving()).toBe(false);
  });

  it('should report requests in flight but no TCP connection gauge over NATS', async () => {
    const metrics = metricsWith(
      testConfig(
        {},
        {
          http,
          nonceStore: 'database',
          transport: {
            kind: 'nats',
            servers: ['nats://127.0.0.1:4222'],
            tls: false,
            queue: 'pai',
            subjectPrefix: 'pai.',
            inboxPrefix: '_INBOX.',
          },
        },
      ),
    );
    metrics.trackServer({
      load: { connections: 0, inFlight: 3 },
      isReceiving: () => true,
    } as never);
    expect(metrics.registry.getSingleMetric('pai_tcp_connections')).toBe(
      undefined,
    );
    expect(await value(metrics, 'pai_requests_in_flight')).toBe(3);
    expect(metrics.serverReceiving()).toBe(true);
  });
});
