import { testConfig } from '../../test/support/config';
import { Registry } from 'prom-client';
import { Metrics, PROCESS_METRICS_MAX_AGE_MS } from './metrics';

const http = { host: '127.0.0.1', port: 0 };

function metricsWith(config = testConfig({ http })): Metrics {
  return new Metrics(config);
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
    const metrics = metricsWith(testConfig());

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

  describe('gauges of other components', () => {
    it('should read a registered gauge at scrape time', async () => {
      const metrics = metricsWith();
      let held = 3;
      metrics.gauge('pai_test_held', 'held', () => held);

      expect(await value(metrics, 'pai_test_held')).toBe(3);
      held = 5;
      expect(await value(metrics, 'pai_test_held')).toBe(5);
    });

    it('should show a read that fails as NaN: unknown, not stale or zero', async () => {
      const metrics = metricsWith();
      metrics.gauge('pai_test_held', 'held', () =>
        Promise.reject(new Error('ECONNREFUSED')),
      );

      expect(await value(metrics, 'pai_test_held')).toBeNaN();
    });

    it('should show a read that hangs as NaN after 2 s', async () => {
      jest.useFakeTimers();
      try {
        const metrics = metricsWith();
        metrics.gauge('pai_test_held', 'held', () => new Promise(() => {}));

        const read = value(metrics, 'pai_test_held');
        await jest.advanceTimersByTimeAsync(2_000);

        expect(await read).toBeNaN();
      } finally {
        jest.useRealTimers();
      }
    });
  });

  it('should report no connections before a TCP server is tracked', async () => {
    const metrics = metricsWith();
    expect(await value(metrics, 'pai_tcp_connections')).toBe(0);
    expect(metrics.serverReceiving()).toBe(false);
  });

  it('should report requests in flight but no TCP connection gauge over NATS', async () => {
    const metrics = metricsWith(
      testConfig({
        http,
        transport: {
          kind: 'nats',
          servers: ['nats://127.0.0.1:4222'],
          tls: false,
          queue: 'pai',
          subjectPrefix: 'pai.',
          inboxPrefix: '_INBOX.',
        },
      }),
    );
    metrics.trackServer({
      load: { connections: 0, inFlight: 3 },
      isReceiving: () => true,
    });
    expect(metrics.registry.getSingleMetric('pai_tcp_connections')).toBe(
      undefined,
    );
    expect(await value(metrics, 'pai_requests_in_flight')).toBe(3);
    expect(metrics.serverReceiving()).toBe(true);
  });
});
