import type { ModuleRef } from '@nestjs/core';
import { testConfig } from '../../test/support/config';
import type { Database } from '../database/database.service';
import { Metrics } from './metrics';

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

  it('should read the nonce record at scrape time, and give NaN when the database fails', async () => {
    let count: Promise<number> = Promise.resolve(7);
    const metrics = metricsWith(
      testConfig({}, { http, nonceStore: 'database' }),
      { run: (() => count) as Database['run'] },
    );

    expect(await value(metrics, 'pai_nonce_records')).toBe(7);
    count = Promise.reject(new Error('ECONNREFUSED'));
    expect(await value(metrics, 'pai_nonce_records')).toBeNaN();
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
