import { once } from 'node:events';
import { AddressInfo, Server, Socket, connect, createServer } from 'node:net';
import { waitFor } from '../../test/support/wait-for';
import { ConnectionTracker } from './connection-tracker';
import { framedSocketClass } from './framed-socket';

// Every wait here is for an event the wrapper must cause at once; a missing close should fail
// the test quickly rather than after the project's 30 s default.
jest.setTimeout(5_000);

const MAX_CHARS = 100;
const FramedSocket = framedSocketClass({
  maxMessageChars: MAX_CHARS,
  frameTimeoutMs: 5_000,
  idleTimeoutMs: 60_000,
});

/** Nest's framing: `<length>#<json>`, the length in UTF-16 code units of the JSON text. */
function frame(message: unknown): string {
  const json = JSON.stringify(message);
  return `${json.length}#${json}`;
}

function rawFrame(json: string): string {
  return `${json.length}#${json}`;
}

/** A request whose JSON text is exactly `length` UTF-16 code units long. */
function requestOfLength(length: number): { pattern: string; data: string } {
  const empty = JSON.stringify({ pattern: 'p', data: '' }).length;
  return { pattern: 'p', data: 'x'.repeat(length - empty) };
}

interface Connection {
  client: Socket;
  serverSide: Socket;
  messages: unknown[];
  errors: unknown[];
}

describe(framedSocketClass.name, () => {
  let server: Server;
  let open: Socket[];

  async function connection(allowHalfOpen = false): Promise<Connection> {
    const accepted = once(server, 'connection') as Promise<[Socket]>;
    const { port } = server.address() as AddressInfo;
    const client = connect({ port, host: '127.0.0.1', allowHalfOpen });
    // A refused connection may be reset rather than ended; the tests look at 'close'.
    client.on('error', () => undefined);
    open.push(client);
    const [[serverSide]] = await Promise.all([
      accepted,
      once(client, 'connect'),
    ]);
    open.push(serverSide);
    new FramedSocket(serverSide);
    const messages: unknown[] = [];
    const errors: unknown[] = [];
    serverSide.on('message', (message: unknown) => messages.push(message));
    // The wrapper reports a framing error on the net socket before closing it.
    serverSide.on('error', (error: unknown) => errors.push(error));
    return { client, serverSide, messages, errors };
  }

  function nextMessages(socket: Socket, count: number): Promise<unknown[]> {
    return new Promise((resolve) => {
      const received: unknown[] = [];
      const onMessage = (message: unknown) => {
        received.push(message);
        if (received.length === count) {
          socket.off('message', onMessage);
          resolve(received);
        }
      };
      socket.on('message', onMessage);
    });
  }

  /** Sends `text` and resolves once the service has closed the connection. */
  async function expectClosedAfter(text: string | Buffer): Promise<Connection> {
    const conn = await connection();
    const closed = once(conn.client, 'close');
    conn.client.write(text);
    await closed;
    expect(conn.messages).toEqual([]);
    expect(conn.errors).toHaveLength(1);
    return conn;
  }

  beforeEach(async () => {
    open = [];
    server = createServer();
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
  });

  afterEach(async () => {
    for (const socket of open) socket.destroy();
    server.close();
    await once(server, 'close');
  });

  describe('valid frames', () => {
    it('should deliver two pipelined frames sent in one write', async () => {
      const { client, serverSide } = await connection();
      const first = { pattern: 'system.ping', data: { n: 1 }, id: 'a' };
      const second = { pattern: 'auth.login', data: { n: 2 }, id: 'b' };
      const received = nextMessages(serverSide, 2);

      client.write(frame(first) + frame(second));

      await expect(received).resolves.toEqual([first, second]);
      expect(serverSide.destroyed).toBe(false);
    });

    it('should accept a frame of exactly the maximum length', async () => {
      const { client, serverSide } = await connection();
      const message = requestOfLength(MAX_CHARS);
      expect(JSON.stringify(message)).toHaveLength(MAX_CHARS);
      const received = nextMessages(serverSide, 1);

      client.write(frame(message));

      await expect(received).resolves.toEqual([message]);
    });

    it('should count an astral character as two UTF-16 units, as Nest does', async () => {
      const { client, serverSide } = await connection();
      const json = '{"pattern":"😀","id":"1"}';
      expect(json).toHaveLength(Buffer.byteLength(json) - 2);
      const received = nextMessages(serverSide, 1);

      client.write(`${json.length}#${json}`);

      await expect(received).resolves.toEqual([{ pattern: '😀', id: '1' }]);
    });

    it('should measure the limit in UTF-16 units, not bytes', async () => {
      const { client, serverSide } = await connection();
      const message = { pattern: '😀'.repeat(40) };
      const json = JSON.stringify(message);
      expect(json.length).toBeLessThanOrEqual(MAX_CHARS);
      expect(Buffer.byteLength(json)).toBeGreaterThan(MAX_CHARS);
      const received = nextMessages(serverSide, 1);

      client.write(rawFrame(json));

      await expect(received).resolves.toEqual([message]);
    });

    it('should reassemble a frame split inside its length and inside a character', async () => {
      const { serverSide } = await connection();
      const message = { pattern: 'é😀', id: '7' };
      const bytes = Buffer.from(frame(message));
      const emoji = bytes.indexOf(Buffer.from('😀'));
      const received = nextMessages(serverSide, 1);

      // Reads as the kernel may deliver them: one digit, then up to the middle of the emoji.
      serverSide.emit('data', bytes.subarray(0, 1));
      serverSide.emit('data', bytes.subarray(1, emoji + 2));
      serverSide.emit('data', bytes.subarray(emoji + 2));

      await expect(received).resolves.toEqual([message]);
    });
  });

  describe('refused frames', () => {
    it('should close the connection as soon as a header declares more than the maximum', async () => {
      // No body follows: the connection must close on the header alone.
      const { serverSide } = await expectClosedAfter(`${MAX_CHARS + 1}#`);

      expect(serverSide.destroyed).toBe(true);
    });

    it('should close the connection on a ten-digit declared length', async () => {
      await expectClosedAfter('9999999999#');
    });

    it('should close a connection whose frame is over the limit after a valid one', async () => {
      const conn = await connection();
      const first = { pattern: 'system.ping', id: 'a' };
      const oversized = requestOfLength(MAX_CHARS + 1);
      const closed = once(conn.client, 'close');

      conn.client.write(frame(first) + frame(oversized));
      await closed;

      expect(conn.messages).not.toContainEqual(oversized);
      expect(conn.errors).toHaveLength(1);
    });

    it.each([
      ['letters', 'abc#{}'],
      ['a digit then a letter', '1a#{}'],
      ['a minus sign', '-1#{}'],
      ['a leading space', ' 2#{}'],
      ['an empty length', '#{}'],
      ['eleven digits', '00000000002#{}'],
      ['a JSON body with no length', '{"pattern":"p"}'],
    ])(
      'should close the connection on a length with %s',
      async (_what, text) => {
        await expectClosedAfter(text);
      },
    );

    it('should close the connection on a frame that is not valid JSON', async () => {
      await expectClosedAfter(rawFrame('{"pattern":'));
    });

    it.each([
      ['an array', '[1]'],
      ['null', 'null'],
      ['a string', '"system.ping"'],
      [
        'a request with a non-string pattern and an object id',
        '{"pattern":5,"id":{}}',
      ],
    ])('should close the connection on %s', async (_what, json) => {
      await expectClosedAfter(rawFrame(json));
    });

    it.each([
      ['an object without a pattern', '{"data":{},"id":"1"}'],
      ['a numeric pattern', '{"pattern":5,"id":"1"}'],
      ['an object pattern', '{"pattern":{"cmd":"x"},"id":"1"}'],
    ])(
      'should answer a request with %s by an unsigned BAD_REQUEST on pattern, and dispatch nothing',
      async (_what, json) => {
        const conn = await connection();
        conn.client.setEncoding('utf8');
        const reply = once(conn.client, 'data') as Promise<[string]>;
        conn.client.write(rawFrame(json));
        const [text] = await reply;

        const packet = JSON.parse(text.slice(text.indexOf('#') + 1)) as unknown;
        expect(packet).toEqual({
          id: '1',
          err: {
            ok: false,
            ts: expect.any(Number),
            error: {
              code: 'BAD_REQUEST',
              message: expect.any(String),
              fields: [{ field: 'pattern', problem: 'must be a string' }],
            },
            mac: null,
          },
          isDisposed: true,
        });
        expect(conn.messages).toEqual([]);
        expect(conn.serverSide.destroyed).toBe(false);
      },
    );

    it('should drop an event with a non-string pattern without answering', async () => {
      const conn = await connection();
      conn.client.write(rawFrame('{"pattern":5}'));
      conn.client.write(frame({ pattern: 'system.ping', id: 'next' }));

      await nextMessages(conn.serverSide, 1);
      expect(conn.messages).toEqual([{ pattern: 'system.ping', id: 'next' }]);
    });

    // A FrameError thrown from emitMessage reaches Nest's TcpSocket.onData, which only end()s the
    // socket: a peer that kept its half open could go on sending frames, each still reaching the
    // handlers (guard, database), unanswered.
    it.each([
      ['a frame that is not valid JSON', rawFrame('{"pattern":')],
      ['a frame that is not a request', rawFrame('[1]')],
      ['a declared length over the maximum', `${MAX_CHARS + 1}#`],
    ])(
      'should process nothing more from a peer that keeps its half open after %s',
      async (_what, text) => {
        const conn = await connection(true);
        const serverEnded = once(conn.client, 'end');
        conn.client.write(text);
        await serverEnded;

        const serverClosed = conn.serverSide.destroyed
          ? Promise.resolve()
          : once(conn.serverSide, 'close');
        const delivered = nextMessages(conn.serverSide, 1);
        conn.client.write(frame({ pattern: 'system.ping', id: 'late' }));

        await expect(
          Promise.race([
            delivered.then(() => 'message delivered'),
            serverClosed.then(() => 'connection closed'),
          ]),
        ).resolves.toBe('connection closed');
        expect(conn.messages).toEqual([]);
      },
    );

    it('should close only the offending connection', async () => {
      const healthy = await connection();
      await expectClosedAfter(`${MAX_CHARS + 1}#`);
      const message = { pattern: 'system.ping', id: 'after' };
      const received = nextMessages(healthy.serverSide, 1);

      healthy.client.write(frame(message));

      await expect(received).resolves.toEqual([message]);
      expect(healthy.errors).toEqual([]);
    });
  });

  describe('admission', () => {
    const AUTH_TIMEOUT_MS = 300;
    let tracker: ConnectionTracker;
    let Admitting: ReturnType<typeof framedSocketClass>;

    beforeEach(() => {
      tracker = new ConnectionTracker(3);
      Admitting = framedSocketClass({
        maxMessageChars: MAX_CHARS,
        frameTimeoutMs: 5_000,
        idleTimeoutMs: 60_000,
        tracker,
        admission: { maxUnverifiedInRow: 3, authTimeoutMs: AUTH_TIMEOUT_MS },
      });
    });

    /** A connection whose service side answers each request, signed or not, as `signed` says. */
    async function answering(
      signed: (id: string) => boolean,
      localAddress?: string,
    ) {
      const accepted = once(server, 'connection') as Promise<[Socket]>;
      const { port } = server.address() as AddressInfo;
      const client = connect({ port, host: '127.0.0.1', localAddress });
      client.on('error', () => undefined);
      client.setEncoding('utf8');
      open.push(client);
      const [[serverSide]] = await Promise.all([
        accepted,
        once(client, 'connect'),
      ]);
      open.push(serverSide);
      const framed = new Admitting(serverSide);
      const dispatched: string[] = [];
      serverSide.on('message', (message: { id: string }) => {
        dispatched.push(message.id);
        const reply = {
          ok: false,
          ts: 1,
          error: {},
          mac: signed(message.id) ? 'f'.repeat(64) : null,
        };
        framed.sendMessage({ id: message.id, err: reply, isDisposed: true });
      });
      let received = '';
      client.on('data', (chunk: string) => (received += chunk));
      const replies = () => received.split('#').length - 1;
      return { client, serverSide, dispatched, replies };
    }

    const request = (id: string) =>
      frame({ pattern: 'system.ping', data: {}, id });

    it('should close a connection after its third unauthenticated message in a row, once the third reply is out', async () => {
      const conn = await answering(() => false);
      const closed = once(conn.client, 'close');

      conn.client.write(
        request('1') + request('2') + request('3') + request('4'),
      );
      await closed;

      expect(conn.dispatched).toEqual(['1', '2', '3']);
      expect(conn.replies()).toBe(3);
      expect(tracker.refusals.unverifiedInRow).toBe(1);
    });

    it('should start counting again after an authenticated message', async () => {
      const conn = await answering((id) => id === 'signed');

      for (const id of ['a', 'b', 'signed', 'c', 'd', 'signed']) {
        conn.client.write(request(id));
      }
      await waitFor(
        'six dispatched messages',
        () => conn.dispatched.length === 6 || conn.serverSide.destroyed,
        { timeoutMs: 2_000 },
      );

      expect(conn.dispatched).toHaveLength(6);
      expect(conn.serverSide.destroyed).toBe(false);
    });

    it('should close a connection that sends nothing within the authentication time', async () => {
      const conn = await answering(() => true);
      const started = Date.now();

      await once(conn.client, 'close');

      expect(Date.now() - started).toBeGreaterThanOrEqual(AUTH_TIMEOUT_MS - 20);
      expect(tracker.refusals.silent).toBe(1);
    });

    it('should keep a connection whose first message was authenticated past that time', async () => {
      const conn = await answering(() => true);
      conn.client.write(request('1'));

      // Time is the subject: the connection outlives the authentication time.
      await new Promise((resolve) => setTimeout(resolve, AUTH_TIMEOUT_MS * 2));

      expect(conn.serverSide.destroyed).toBe(false);
      expect(tracker.refusals.silent).toBe(0);
    });

    it('should refuse a connection over the per-address cap at once, and keep serving others', async () => {
      const held = [];
      for (let i = 0; i < 3; i += 1)
        held.push(await answering(() => true, '127.0.0.2'));
      const over = await answering(() => true, '127.0.0.2');
      await once(over.client, 'close');
      const other = await answering(() => true, '127.0.0.3');
      other.client.write(request('x'));
      await waitFor(
        'the message to be dispatched',
        () => other.dispatched.length > 0 || other.serverSide.destroyed,
        { timeoutMs: 2_000 },
      );

      expect(tracker.refusals.overAddressCap).toBe(1);
      expect(held.every((conn) => !conn.serverSide.destroyed)).toBe(true);
      expect(other.dispatched).toEqual(['x']);
    });
  });
});
