import type { Envelope } from '../protocol/envelope';
import type { ClientProxy } from '@nestjs/microservices';
import { randomBytes } from 'node:crypto';
import { NEVER, Observable, of, throwError } from 'rxjs';
import { ErrorCode } from '../protocol/error-code';
import {
  hmacHex,
  macMatches,
  replyMacInput,
  requestMacInput,
} from '../protocol/mac';
import { PaiClient, type PaiClientOptions } from './pai-client';
import {
  ClientErrorCode,
  PaiClientError,
  type PaiErrorCode,
} from './pai-client.error';

type SentEnvelope = Envelope;

type Responder = (
  pattern: string,
  envelope: SentEnvelope,
) => Observable<unknown>;

const KEY = randomBytes(32);
const KID = 'client-1';
const NOW = 1_764_288_000_000;
const TEN_MINUTES = 10 * 60_000;

/** What the service does: signs a reply with the request's pattern, kid, nonce and MAC. */
function signReply(
  pattern: string,
  envelope: Pick<SentEnvelope, 'kid' | 'nonce' | 'mac'>,
  body: Record<string, unknown>,
  key: Buffer = KEY,
): Record<string, unknown> {
  const { kid, nonce, mac } = envelope;
  return {
    ...body,
    mac: hmacHex(key, replyMacInput({ pattern, kid, nonce, mac }, body)),
  };
}

function okBody(payload: Record<string, unknown>, ts = NOW) {
  return { ok: true, ts, payload };
}

function errorBody(
  code: string,
  extra: Record<string, unknown> = {},
  ts = NOW,
) {
  return { ok: false, ts, error: { code, message: 'refused', ...extra } };
}

function fakeProxy(respond: Responder) {
  const send = jest.fn(respond);
  const close = jest.fn();
  return { proxy: { send, close } as unknown as ClientProxy, send, close };
}

function clientFor(
  respond: Responder,
  options: Partial<PaiClientOptions> = {},
) {
  const fake = fakeProxy(respond);
  const client = new PaiClient(fake.proxy, {
    host: '127.0.0.1',
    port: 8080,
    kid: KID,
    secret: KEY,
    now: () => NOW,
    ...options,
  });
  return { client, ...fake };
}

function sentEnvelopes(send: jest.Mock): SentEnvelope[] {
  return send.mock.calls.map((call: unknown[]) => call[1] as SentEnvelope);
}

async function expectPaiError(
  promise: Promise<unknown>,
  code: PaiErrorCode,
): Promise<void> {
  await expect(promise).rejects.toBeInstanceOf(PaiClientError);
  await expect(promise).rejects.toMatchObject({ code });
}

describe(PaiClient.name, () => {
  describe('requests', () => {
    it('should send a signed version-2 envelope', async () => {
      const { client, send } = clientFor((pattern, envelope) =>
        of(signReply(pattern, envelope, okBody({ serverTime: NOW }))),
      );

      await client.send('auth.login', { username: 'alice', password: 'pw' });

      expect(send).toHaveBeenCalledTimes(1);
      const [pattern, envelope] = send.mock.calls[0];
      expect(pattern).toBe('auth.login');
      expect(Object.keys(envelope).sort()).toEqual(
        ['kid', 'mac', 'nonce', 'payload', 'ts', 'v'].sort(),
      );
      expect(envelope.v).toBe(2);
      expect(envelope.kid).toBe(KID);
      expect(envelope.ts).toBe(NOW);
      expect(envelope.nonce).toMatch(/^[A-Za-z0-9_-]{16,128}$/);
      expect(envelope.payload).toEqual({ username: 'alice', password: 'pw' });
      const expected = hmacHex(KEY, requestMacInput('auth.login', envelope));
      expect(macMatches(expected, envelope.mac)).toBe(true);
    });

    it('should sign with a secret given in base64', async () => {
      const { client, send } = clientFor(
        (pattern, envelope) =>
          of(signReply(pattern, envelope, okBody({ serverTime: NOW }))),
        { secret: KEY.toString('base64') },
      );

      await client.send('system.ping', {});

      const [envelope] = sentEnvelopes(send);
      const expected = hmacHex(KEY, requestMacInput('system.ping', envelope));
      expect(envelope.mac).toBe(expected);
    });

    it('should use a new nonce for every request', async () => {
      const { client, send } = clientFor((pattern, envelope) =>
        of(signReply(pattern, envelope, okBody({ serverTime: NOW }))),
      );

      await client.send('system.ping', {});
      await client.send('system.ping', {});

      const [first, second] = sentEnvelopes(send);
      expect(first.nonce).not.toBe(second.nonce);
    });
  });

  describe('replies', () => {
    it('should return the payload of a signed success reply', async () => {
      const { client } = clientFor((pattern, envelope) =>
        of(signReply(pattern, envelope, okBody({ serverTime: 1234 }))),
      );

      await expect(client.send('system.ping', {})).resolves.toEqual({
        serverTime: 1234,
      });
    });

    it('should reject a signed error reply with its code and details', async () => {
      const fields = [{ field: 'username', problem: 'too short' }];
      const { client } = clientFor((pattern, envelope) =>
        throwError(() =>
          signReply(pattern, envelope, errorBody('BAD_REQUEST', { fields })),
        ),
      );

      const result = client.send('auth.register', {
        username: 'a',
        password: 'long enough',
      });

      await expectPaiError(result, ErrorCode.BAD_REQUEST);
      await expect(result).rejects.toMatchObject({ details: { fields } });
    });

    it.each<[string, Responder]>([
      ['a null mac', () => of({ ...okBody({ serverTime: 1 }), mac: null })],
      ['no mac', () => of(okBody({ serverTime: 1 }))],
      [
        'a mac made with another key',
        (pattern, envelope) =>
          of(
            signReply(
              pattern,
              envelope,
              okBody({ serverTime: 1 }),
              randomBytes(32),
            ),
          ),
      ],
      [
        'a mac for another nonce',
        (pattern, envelope) =>
          of(
            signReply(
              pattern,
              { ...envelope, nonce: randomBytes(16).toString('base64url') },
              okBody({ serverTime: 1 }),
            ),
          ),
      ],
      [
        'a mac for another pattern',
        (_pattern, envelope) =>
          of(signReply('users.me', envelope, okBody({ serverTime: 1 }))),
      ],
      [
        'a mac for another kid',
        (pattern, envelope) =>
          of(
            signReply(
              pattern,
              { ...envelope, kid: 'other' },
              okBody({ serverTime: 1 }),
            ),
          ),
      ],
      [
        'a payload changed after signing',
        (pattern, envelope) =>
          of({
            ...signReply(pattern, envelope, okBody({ serverTime: 1 })),
            payload: { serverTime: 2 },
          }),
      ],
      [
        'a lone surrogate (no canonical form)',
        () =>
          of({
            ...(JSON.parse(
              '{"ok":true,"ts":1,"payload":{"x":"\\ud800"}}',
            ) as object),
            mac: '0'.repeat(64),
          }),
      ],
    ])(
      'should reject a reply claiming ok:true with %s as REPLY_UNVERIFIED',
      async (_case, respond) => {
        const { client } = clientFor(respond);

        await expectPaiError(
          client.send('system.ping', {}),
          ClientErrorCode.REPLY_UNVERIFIED,
        );
      },
    );

    it('should reject an unsigned error reply as REPLY_UNVERIFIED, not as the code it claims', async () => {
      const { client } = clientFor(() =>
        throwError(() => ({
          ...errorBody('INVALID_CREDENTIALS'),
          mac: null,
        })),
      );

      await expectPaiError(
        client.send('auth.login', { username: 'alice', password: 'pw' }),
        ClientErrorCode.REPLY_UNVERIFIED,
      );
    });

    it('should reject a reply signed for a tampered copy of the request as REPLY_UNVERIFIED', async () => {
      const { client } = clientFor((pattern, envelope) =>
        throwError(() =>
          signReply(
            pattern,
            { ...envelope, mac: 'f'.repeat(64) },
            errorBody('MAC_INVALID'),
          ),
        ),
      );

      const sent = client.send('transactions.create', {
        token: 't'.repeat(22),
        amount: '1.00',
      });

      await expectPaiError(sent, ClientErrorCode.REPLY_UNVERIFIED);
      await expect(sent).rejects.toThrow(/may or may not have run/);
    });

    it('should point at the key configuration when an unverified reply claims MAC_INVALID', async () => {
      const { client } = clientFor(() =>
        throwError(() => ({ ...errorBody('MAC_INVALID'), mac: null })),
      );

      await expect(client.send('system.ping', {})).rejects.toThrow(
        /key id "client-1" and its secret/,
      );
    });

    it('should reject an error reply signed for another pattern as REPLY_UNVERIFIED', async () => {
      const { client } = clientFor((_pattern, envelope) =>
        throwError(() =>
          signReply('auth.register', envelope, errorBody('USERNAME_TAKEN')),
        ),
      );

      await expectPaiError(
        client.send('auth.login', { username: 'alice', password: 'pw' }),
        ClientErrorCode.REPLY_UNVERIFIED,
      );
    });
  });

  describe('clock skew', () => {
    const serverTime = NOW + TEN_MINUTES;

    function staleReply(pattern: string, envelope: SentEnvelope) {
      return throwError(() =>
        signReply(
          pattern,
          envelope,
          errorBody('STALE', { serverTime }, serverTime),
        ),
      );
    }

    it('should retry a STALE request once with a new nonce and the server clock', async () => {
      const { client, send } = clientFor((pattern, envelope) =>
        send.mock.calls.length === 1
          ? staleReply(pattern, envelope)
          : of(
              signReply(pattern, envelope, okBody({ serverTime }, serverTime)),
            ),
      );

      await expect(client.send('system.ping', {})).resolves.toEqual({
        serverTime,
      });

      expect(send).toHaveBeenCalledTimes(2);
      const [first, retry] = sentEnvelopes(send);
      expect(first.ts).toBe(NOW);
      expect(retry.ts).toBe(NOW + TEN_MINUTES);
      expect(retry.nonce).toMatch(/^[A-Za-z0-9_-]{16,128}$/);
      expect(retry.nonce).not.toBe(first.nonce);
      const expected = hmacHex(KEY, requestMacInput('system.ping', retry));
      expect(macMatches(expected, retry.mac)).toBe(true);
      expect(client.clockOffsetMs).toBe(TEN_MINUTES);
    });

    it('should keep the learned offset for later requests', async () => {
      const { client, send } = clientFor((pattern, envelope) =>
        send.mock.calls.length === 1
          ? staleReply(pattern, envelope)
          : of(
              signReply(pattern, envelope, okBody({ serverTime }, serverTime)),
            ),
      );

      await client.send('system.ping', {});
      await client.send('system.ping', {});

      expect(send).toHaveBeenCalledTimes(3);
      expect(sentEnvelopes(send)[2].ts).toBe(NOW + TEN_MINUTES);
    });

    it('should not retry a second STALE', async () => {
      // A third request would succeed: only a client that stops after one retry sees STALE.
      const { client, send } = clientFor((pattern, envelope) =>
        send.mock.calls.length <= 2
          ? staleReply(pattern, envelope)
          : of(
              signReply(pattern, envelope, okBody({ serverTime }, serverTime)),
            ),
      );

      await expectPaiError(client.send('system.ping', {}), ErrorCode.STALE);

      expect(send).toHaveBeenCalledTimes(2);
    });

    it('should not retry an unsigned STALE nor learn its serverTime', async () => {
      const { client, send } = clientFor(() =>
        throwError(() => ({
          ...errorBody('STALE', { serverTime }),
          mac: null,
        })),
      );

      await expectPaiError(
        client.send('system.ping', {}),
        ClientErrorCode.REPLY_UNVERIFIED,
      );

      expect(send).toHaveBeenCalledTimes(1);
      expect(client.clockOffsetMs).toBe(0);
    });

    it('should start with no clock offset', () => {
      const { client } = clientFor(() => NEVER);

      expect(client.clockOffsetMs).toBe(0);
    });
  });

  describe('transport failures', () => {
    it('should reject TIMEOUT when no reply comes in time', async () => {
      const { client } = clientFor(() => NEVER, { timeoutMs: 50 });

      await expectPaiError(
        client.send('system.ping', {}),
        ClientErrorCode.TIMEOUT,
      );
    });

    it('should reject CONNECTION when the transport fails', async () => {
      const { client } = clientFor(
        () => throwError(() => new Error('ECONNREFUSED')),
        { connectionRetries: 0 },
      );

      await expectPaiError(
        client.send('system.ping', {}),
        ClientErrorCode.CONNECTION,
      );
    });

    it('should close the proxy', async () => {
      const { client, close } = clientFor(() => NEVER);

      await client.close();

      expect(close).toHaveBeenCalledTimes(1);
    });
  });

  describe('a verified REPLAY: a copy of this very message ran first', () => {
    const replay = (pattern: string, envelope: SentEnvelope) =>
      throwError(() => signReply(pattern, envelope, errorBody('REPLAY')));

    it('should fetch the result of a create with a reference by sending it again', async () => {
      const { client, send } = clientFor((pattern, envelope) =>
        send.mock.calls.length === 1
          ? replay(pattern, envelope)
          : of(
              signReply(
                pattern,
                envelope,
                okBody({ transaction: { id: '9' }, created: false }),
              ),
            ),
      );
      const payload = { token: 't', amount: '5.00', reference: 'order:1' };

      await expect(
        client.send('transactions.create', payload),
      ).resolves.toEqual({ transaction: { id: '9' }, created: false });

      const [first, again] = sentEnvelopes(send);
      expect(again.nonce).not.toBe(first.nonce);
      expect(again.payload).toEqual(payload);
    });

    it.each<[string, Parameters<PaiClient['send']>]>([
      [
        'a create without a reference',
        ['transactions.create', { token: 't', amount: '5.00' }],
      ],
      ['a login', ['auth.login', { username: 'alice', password: 'pw' }]],
      ['a registration', ['auth.register', { username: 'a', password: 'p' }]],
    ])(
      'should report %s as executed once, result unseen, and not send it again',
      async (_case, [pattern, payload]) => {
        const { client, send } = clientFor(replay);

        const sent = client.send(pattern, payload);

        await expectPaiError(sent, ErrorCode.REPLAY);
        await expect(sent).rejects.toMatchObject({
          details: { executed: true },
        });
        await expect(sent).rejects.toThrow(/executed once/);
        expect(send).toHaveBeenCalledTimes(1);
      },
    );

    it('should stop fetching after a few REPLAYs in a row', async () => {
      const { client, send } = clientFor(replay);

      await expectPaiError(
        client.send('users.me', { token: 't' }),
        ErrorCode.REPLAY,
      );
      expect(send).toHaveBeenCalledTimes(3);
    });

    it('should take an unsigned REPLAY as unverified, not as executed', async () => {
      const { client, send } = clientFor(() =>
        throwError(() => ({ ...errorBody('REPLAY'), mac: null })),
      );

      await expectPaiError(
        client.send('transactions.create', { token: 't', amount: '5.00' }),
        ClientErrorCode.REPLY_UNVERIFIED,
      );
      expect(send).toHaveBeenCalledTimes(1);
    });
  });

  describe('a proxy that screens replies (NATS inboxes)', () => {
    function screeningClient(respond: Responder) {
      const fake = fakeProxy(respond);
      let accept:
        ((p: string, r: unknown, reply: unknown) => boolean) | undefined;
      const proxy = Object.assign(fake.proxy, {
        screenReplies: (test: typeof accept) => (accept = test),
      });
      const client = new PaiClient(proxy, {
        kid: KID,
        secret: KEY,
        now: () => NOW,
        timeoutMs: 50,
      });
      return { client, accept: () => accept!, ...fake };
    }

    it('should accept only the reply signed for the very request', () => {
      const { accept } = screeningClient(() => NEVER);
      const envelope = { kid: KID, nonce: 'N'.repeat(22), mac: 'a'.repeat(64) };
      const body = okBody({ serverTime: NOW });

      expect(
        accept()(
          'system.ping',
          envelope,
          signReply('system.ping', envelope, body),
        ),
      ).toBe(true);
      expect(
        accept()(
          'system.ping',
          envelope,
          signReply('system.ping', { ...envelope, mac: 'b'.repeat(64) }, body),
        ),
      ).toBe(false);
      expect(accept()('system.ping', envelope, { ...body, mac: null })).toBe(
        false,
      );
      expect(
        accept()(
          'users.me',
          envelope,
          signReply('system.ping', envelope, body),
        ),
      ).toBe(false);
    });

    it('should say on TIMEOUT how many unverified replies it ignored', async () => {
      const { client, accept } = screeningClient((_pattern, envelope) => {
        accept()('system.ping', envelope, {
          ...errorBody('MAC_INVALID'),
          mac: null,
        });
        return NEVER;
      });

      const sent = client.send('system.ping', {});

      await expectPaiError(sent, ClientErrorCode.TIMEOUT);
      await expect(sent).rejects.toThrow(
        /1 unverified reply \(MAC_INVALID\) ignored/,
      );
      await expect(sent).rejects.toMatchObject({
        details: { unverifiedReplies: 1 },
      });
    });
  });

  describe('repeats after a lost connection', () => {
    const closed = () => throwError(() => new Error('Connection closed'));
    const created = (pattern: string, envelope: SentEnvelope) =>
      of(
        signReply(
          pattern,
          envelope,
          okBody({ transaction: { id: '7' }, created: false }),
        ),
      );

    /** Fails the first `failures` sends as a dropped connection, then answers. */
    function flaky(failures: number, options: Partial<PaiClientOptions> = {}) {
      const fake = clientFor(
        (pattern, envelope) =>
          fake.send.mock.calls.length <= failures
            ? closed()
            : created(pattern, envelope),
        { connectionRetryDelayMs: 0, ...options },
      );
      return fake;
    }

    it.each<[string, Parameters<PaiClient['send']>]>([
      ['system.ping', ['system.ping', {}]],
      ['users.me', ['users.me', { token: 't' }]],
      ['transactions.list', ['transactions.list', { token: 't' }]],
      ['auth.logout', ['auth.logout', { token: 't' }]],
      [
        'transactions.create with a reference',
        ['transactions.create', { token: 't', amount: '1.00', reference: 'r' }],
      ],
    ])(
      'should send %s again as a new signed message',
      async (_case, [pattern, payload]) => {
        const { client, send } = flaky(2);

        await expect(client.send(pattern, payload as never)).resolves.toEqual({
          transaction: { id: '7' },
          created: false,
        });

        expect(send).toHaveBeenCalledTimes(3);
        const envelopes = sentEnvelopes(send);
        expect(new Set(envelopes.map((e) => e.nonce)).size).toBe(3);
        for (const envelope of envelopes) {
          expect(envelope.payload).toEqual(payload);
          const expected = hmacHex(KEY, requestMacInput(pattern, envelope));
          expect(macMatches(expected, envelope.mac)).toBe(true);
        }
      },
    );

    it.each<[string, Parameters<PaiClient['send']>]>([
      [
        'transactions.create without a reference',
        ['transactions.create', { token: 't', amount: '1.00' }],
      ],
      [
        'transactions.create with an empty reference',
        ['transactions.create', { token: 't', amount: '1.00', reference: '' }],
      ],
      ['auth.register', ['auth.register', { username: 'a', password: 'p' }]],
      ['auth.login', ['auth.login', { username: 'a', password: 'p' }]],
    ])('should not send %s again', async (_case, [pattern, payload]) => {
      // The second send would succeed: only a client that does not repeat sees CONNECTION.
      const { client, send } = flaky(1);

      await expectPaiError(
        client.send(pattern, payload),
        ClientErrorCode.CONNECTION,
      );

      expect(send).toHaveBeenCalledTimes(1);
    });

    it('should give up after connectionRetries repeats', async () => {
      const { client, send } = flaky(4, { connectionRetries: 3 });

      await expectPaiError(
        client.send('system.ping', {}),
        ClientErrorCode.CONNECTION,
      );

      expect(send).toHaveBeenCalledTimes(4);
    });

    it('should repeat twice by default', async () => {
      const { client, send } = flaky(3);

      await expectPaiError(
        client.send('system.ping', {}),
        ClientErrorCode.CONNECTION,
      );

      expect(send).toHaveBeenCalledTimes(3);
    });

    it('should not repeat when connectionRetries is 0', async () => {
      const { client, send } = flaky(1, { connectionRetries: 0 });

      await expectPaiError(
        client.send('system.ping', {}),
        ClientErrorCode.CONNECTION,
      );

      expect(send).toHaveBeenCalledTimes(1);
    });

    it('should not repeat after a TIMEOUT: the request may still be running', async () => {
      const { client, send } = clientFor(() => NEVER, {
        timeoutMs: 20,
        connectionRetryDelayMs: 0,
      });

      await expectPaiError(
        client.send('system.ping', {}),
        ClientErrorCode.TIMEOUT,
      );

      expect(send).toHaveBeenCalledTimes(1);
    });

    it('should not repeat after a verified error reply', async () => {
      const { client, send } = clientFor(
        (pattern, envelope) =>
          throwError(() =>
            signReply(pattern, envelope, errorBody('UNAVAILABLE')),
          ),
        { connectionRetryDelayMs: 0 },
      );

      await expectPaiError(
        client.send('users.me', { token: 't' }),
        ErrorCode.UNAVAILABLE,
      );

      expect(send).toHaveBeenCalledTimes(1);
    });

    it('should wait before each repeat, twice as long each time', async () => {
      jest.useFakeTimers();
      try {
        const { client, send } = flaky(2, { connectionRetryDelayMs: 100 });

        const result = client.send('system.ping', {});
        await jest.advanceTimersByTimeAsync(99);
        expect(send).toHaveBeenCalledTimes(1);
        await jest.advanceTimersByTimeAsync(1);
        expect(send).toHaveBeenCalledTimes(2);
        await jest.advanceTimersByTimeAsync(199);
        expect(send).toHaveBeenCalledTimes(2);
        await jest.advanceTimersByTimeAsync(1);
        expect(send).toHaveBeenCalledTimes(3);
        await expect(result).resolves.toBeDefined();
      } finally {
        jest.useRealTimers();
      }
    });
  });
});
