import type { NatsContext } from '@nestjs/microservices';
import type { NatsTransport } from '../config/transport-config';
import { NatsServer } from './nats.server';
import { UNKNOWN_PATTERN_ROUTE } from '../protocol/routing';

const transport: NatsTransport = {
  kind: 'nats',
  servers: ['nats://127.0.0.1:4222'],
  tls: false,
  queue: 'pai',
  subjectPrefix: 'test.pai.',
  inboxPrefix: '_INBOX.',
};

interface Sent {
  id?: string;
  response?: unknown;
  err?: Record<string, any>;
  isDisposed?: boolean;
}

/** A broker connection that records the subscription and whatever is flushed or closed. */
function fakeConnection() {
  const subscriptions: {
    subject: string;
    queue?: string;
    deliver: (message: unknown) => void;
  }[] = [];
  const connection = {
    flushed: 0,
    isShut: false,
    subscribe(
      subject: string,
      options: { queue?: string; callback: (e: null, m: unknown) => void },
    ) {
      subscriptions.push({
        subject,
        queue: options.queue,
        deliver: (message) => options.callback(null, message),
      });
      return {
        drained: false,
        isClosed: () => false,
        drain() {
          this.drained = true;
          return Promise.resolve();
        },
      };
    },
    closed: () => new Promise<void>(() => undefined),
    isClosed: () => connection.isShut,
    flush() {
      connection.flushed += 1;
      return Promise.resolve();
    },
    close() {
      connection.isShut = true;
      return Promise.resolve();
    },
  };
  return { connection, subscriptions };
}

/** A received NATS message whose replies are collected in `replies`. */
function message(
  subject: string,
  body: string | object,
  reply = '_INBOX.pai-test.1',
) {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  const replies: Sent[] = [];
  let replied: () => void = () => undefined;
  const disposed = new Promise<void>((resolve) => (replied = resolve));
  return {
    replies,
    disposed,
    msg: {
      subject,
      reply,
      headers: undefined,
      data: Buffer.from(text, 'utf8'),
      string: () => text,
      respond(data: string) {
        const sent = JSON.parse(data) as Sent;
        replies.push(sent);
        if (sent.isDisposed) replied();
        return true;
      },
    },
  };
}

function serverWith(
  limits = { maxMessageBytes: 1_024, drainTimeoutMs: 1_000 },
  inboxPrefix = transport.inboxPrefix,
) {
  const server = new NatsServer({ ...transport, inboxPrefix }, limits);
  const seen: { pattern: string; data: unknown }[] = [];
  server.addHandler('system.ping', (data: unknown, context: NatsContext) => {
    seen.push({ pattern: context.getSubject(), data });
    return Promise.resolve({ pong: true });
  });
  server.addHandler(
    UNKNOWN_PATTERN_ROUTE,
    (data: unknown, context: NatsContext) => {
      seen.push({ pattern: `unknown:${context.getSubject()}`, data });
      return Promise.resolve({ unknown: true });
    },
  );
  const { connection, subscriptions } = fakeConnection();
  server.bindEvents(connection as never);
  // As listen() would have stored it.
  (server as unknown as { natsClient: unknown }).natsClient = connection;
  return { server, seen, connection, subscriptions };
}

describe(NatsServer.name, () => {
  it('should subscribe once, to every subject under the prefix, in the queue group', () => {
    const { subscriptions } = serverWith();
    expect(
      subscriptions.map(({ subject, queue }) => ({ subject, queue })),
    ).toEqual([{ subject: 'test.pai.>', queue: 'pai' }]);
  });

  it('should dispatch on the bare pattern and report it as the subject', async () => {
    const { seen, subscriptions } = serverWith();
    const ping = message('test.pai.system.ping', {
      pattern: 'ignored',
      data: { v: 1 },
      id: 'a',
    });
    subscriptions[0].deliver(ping.msg);
    await ping.disposed;
    expect(seen).toEqual([{ pattern: 'system.ping', data: { v: 1 } }]);
    expect(ping.replies).toEqual([
      { id: 'a', response: { pong: true }, isDisposed: true },
    ]);
  });

  it('should route a pattern without a handler to the unknown-pattern route', async () => {
    const { seen, subscriptions } = serverWith();
    const drain = message('test.pai.accounts.drain', { data: {}, id: 'b' });
    subscriptions[0].deliver(drain.msg);
    await drain.disposed;
    // The guard runs on that route and signs over the pattern the caller used.
    expect(seen).toEqual([{ pattern: 'unknown:accounts.drain', data: {} }]);
  });

  it('should drop an event without running a handler', async () => {
    const { server, seen, subscriptions } = serverWith();
    const event = message('test.pai.system.ping', { data: {} }, '');
    subscriptions[0].deliver(event.msg);
    await new Promise((resolve) => setImmediate(resolve));
    expect(seen).toEqual([]);
    expect(event.replies).toEqual([]);
    expect(server.refusals.events).toBe(1);
  });

  it('should run no handler for a request with an id but no reply subject, as for an event', async () => {
    const { server, seen, subscriptions } = serverWith();
    const unanswerable = message(
      'test.pai.system.ping',
      { data: {}, id: 'g' },
      '',
    );
    subscriptions[0].deliver(unanswerable.msg);
    await new Promise((resolve) => setImmediate(resolve));
    expect(seen).toEqual([]);
    expect(server.refusals.events).toBe(1);
  });

  it.each([
    ['another service', 'billing.commands.refund'],
    ['the prefix without its dot', '_INBOX'],
    ['the bare prefix', '_INBOX.'],
    ['a lookalike of the prefix', '_INBOXES.1'],
    ['an empty token', '_INBOX..1'],
    ['a wildcard', '_INBOX.>'],
    ['a wildcard token', '_INBOX.*.1'],
  ])(
    'should publish nothing and run no handler for a reply subject outside the inbox prefix: %s (%s)',
    async (_, reply) => {
      const { server, seen, subscriptions } = serverWith();
      const ping = message(
        'test.pai.system.ping',
        { data: {}, id: 'h' },
        reply,
      );
      const huge = message(
        'test.pai.system.ping',
        { data: { pad: 'x'.repeat(1_024) }, id: 'i' },
        reply,
      );
      subscriptions[0].deliver(ping.msg);
      // Not even the unsigned refusal of an oversized message goes there.
      subscriptions[0].deliver(huge.msg);
      await new Promise((resolve) => setImmediate(resolve));
      expect(seen).toEqual([]);
      expect(ping.replies).toEqual([]);
      expect(huge.replies).toEqual([]);
      expect(server.refusals).toEqual({
        events: 0,
        replySubjects: 2,
        messages: 0,
      });
      expect(server.load.inFlight).toBe(0);
    },
  );

  it('should answer only under a configured inbox prefix', async () => {
    const { server, seen, subscriptions } = serverWith(
      undefined,
      '_INBOX.pai.',
    );
    const outside = message(
      'test.pai.system.ping',
      { data: {}, id: 'j' },
      '_INBOX.other.1',
    );
    const inside = message(
      'test.pai.system.ping',
      { data: {}, id: 'k' },
      '_INBOX.pai.billing.1',
    );
    subscriptions[0].deliver(outside.msg);
    subscriptions[0].deliver(inside.msg);
    await inside.disposed;
    expect(seen).toHaveLength(1);
    expect(outside.replies).toEqual([]);
    expect(inside.replies).toEqual([
      { id: 'k', response: { pong: true }, isDisposed: true },
    ]);
    expect(server.refusals.replySubjects).toBe(1);
  });

  it.each([
    [
      'over the size limit',
      { data: { pad: 'x'.repeat(1_024) }, id: 'c' },
      'too large',
    ],
    ['not JSON', '{oops', 'not JSON'],
    ['not a packet', '[1,2]', 'not a request packet'],
  ])(
    'should answer a message %s with an unsigned BAD_REQUEST and run no handler',
    (_, body, problem) => {
      const { seen, subscriptions } = serverWith();
      const bad = message('test.pai.system.ping', body);
      subscriptions[0].deliver(bad.msg);
      expect(seen).toEqual([]);
      expect(bad.replies).toEqual([
        {
          err: {
            ok: false,
            ts: expect.any(Number),
            error: {
              code: 'BAD_REQUEST',
              message: expect.any(String),
              fields: [{ field: expect.any(String), problem }],
            },
            mac: null,
          },
          isDisposed: true,
        },
      ]);
    },
  );

  it('should accept a message of exactly the size limit', async () => {
    const { seen, subscriptions } = serverWith();
    const packet = JSON.stringify({ data: {}, id: 'd' });
    const edge = message(
      'test.pai.system.ping',
      packet + ' '.repeat(1_024 - packet.length),
    );
    subscriptions[0].deliver(edge.msg);
    await edge.disposed;
    expect(seen).toHaveLength(1);
  });

  describe('close', () => {
    it('should drain the subscription, wait for requests in flight to reply, flush, then close', async () => {
      const { server, connection, subscriptions } = serverWith();
      let release: () => void = () => undefined;
      const gate = new Promise<void>((resolve) => (release = resolve));
      server.addHandler('slow', async () => {
        await gate;
        return 'done';
      });
      const slow = message('test.pai.slow', { data: {}, id: 'e' });
      subscriptions[0].deliver(slow.msg);
      await new Promise((resolve) => setImmediate(resolve));
      expect(server.load.inFlight).toBe(1);

      let closed = false;
      const closing = server.close().then(() => (closed = true));
      // Time is the subject: 50 ms on, the close still waits for the request in flight.
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(closed).toBe(false);
      expect(connection.isShut).toBe(false);
      expect(server.isReceiving()).toBe(false);

      release();
      await closing;
      expect(slow.replies).toEqual([
        { id: 'e', response: 'done', isDisposed: true },
      ]);
      expect(connection.flushed).toBeGreaterThan(0);
      expect(connection.isShut).toBe(true);
      expect(server.lastDrain).toMatchObject({ drained: true, abandoned: 0 });
    });

    it('should give up on requests still running at the drain timeout', async () => {
      const { server, connection, subscriptions } = serverWith({
        maxMessageBytes: 1_024,
        drainTimeoutMs: 100,
      });
      server.addHandler('stuck', () => new Promise(() => undefined));
      subscriptions[0].deliver(
        message('test.pai.stuck', { data: {}, id: 'f' }).msg,
      );
      await server.close();
      expect(server.lastDrain).toMatchObject({ drained: false, abandoned: 1 });
      expect(server.lastDrain!.elapsedMs).toBeLessThan(1_000);
      expect(connection.isShut).toBe(true);
    });
  });
});
