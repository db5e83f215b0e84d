import { testConfig } from '../../test/support/config';
import { ArgumentsHost, Logger } from '@nestjs/common';
import { ExecutionContextHost } from '@nestjs/core/helpers/execution-context-host';
import { Test } from '@nestjs/testing';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { firstValueFrom } from 'rxjs';
import { APP_CONFIG, AppConfig } from '../config/config';
import { RequestObserver } from '../observability/request-observer';
import { Clock } from '../common/clock';
import { ErrorCode, wireMessage } from '@pai/client/protocol/error-code';
import { hmacHex, replyMacInput } from '@pai/client/protocol/mac';
import { ProtocolError } from './protocol-error';
import { ProtocolExceptionFilter } from './protocol-exception.filter';
import { ErrorReply, ReplySigner } from './reply-signer';
import {
  deferNonce,
  markVerified,
  type PendingNonce,
} from './verified-request';
import { NonceRecord, type NonceVerdict } from '../nonce-record/nonce-record';
import { UnavailableError } from '../common/unavailable';

interface ReplyVector {
  pattern: string;
  kid: string;
  requestNonce: string;
  requestMac: string;
  reply: { ts: number; mac: string } & Record<string, unknown>;
}

// Kept identical to the shared vectors by mac.spec.ts.
const vectors = JSON.parse(
  readFileSync(
    resolve(__dirname, '../../test/fixtures/protocol-vectors.json'),
    'utf8',
  ),
) as { keys: Record<string, string>; replies: ReplyVector[] };

const DEFAULT_KEY = Buffer.from(vectors.keys.default, 'base64');
const OTHER_KEY = Buffer.alloc(32, 7);
const PATTERN = 'transactions.create';
const NONCE = '8rT3kY2mQ0vX9aLp4sHc1w';
const REQUEST_MAC = 'c'.repeat(64);
const NOW = 1764288000200;

const config: AppConfig = testConfig({
  macKeys: { default: DEFAULT_KEY, other: OTHER_KEY },
});

function request(changes: Record<string, unknown> = {}) {
  return {
    v: 2,
    kid: 'default',
    ts: NOW,
    nonce: NONCE,
    payload: {},
    mac: REQUEST_MAC,
    ...changes,
  };
}

/**
 * The message's context as the filter sees it; `verified` as the guard leaves it when the
 * request's MAC matched (its kid, nonce and mac, under the key its kid names).
 */
function rpcHost(
  data: unknown,
  pattern = PATTERN,
  verified = true,
): ArgumentsHost {
  const host = new ExecutionContextHost([data, { getPattern: () => pattern }]);
  host.setType('rpc');
  if (verified) {
    const { kid, nonce, mac } = data as ReturnType<typeof request>;
    markVerified(host, {
      pattern,
      kid,
      nonce,
      mac,
      key: config.macKeys.get(kid)!,
    });
  }
  return host;
}

function expectedMac(
  key: Buffer,
  reply: ErrorReply,
  pattern = PATTERN,
  kid = 'default',
  nonce = NONCE,
  mac = REQUEST_MAC,
): string {
  const withoutMac = Object.fromEntries(
    Object.entries(reply).filter(([field]) => field !== 'mac'),
  );
  return hmacHex(key, replyMacInput({ pattern, kid, nonce, mac }, withoutMac));
}

describe(ProtocolExceptionFilter.name, () => {
  let filter: ProtocolExceptionFilter;
  let now: number;
  let loggedErrors: jest.SpyInstance;
  let loggedWarnings: jest.SpyInstance;
  let observed: jest.Mock;
  let consume: jest.Mock<Promise<NonceVerdict>, [string, string, number]>;

  /** What the filter's Observable errors with (the Nest `err` sent to the client). */
  async function replyTo(
    exception: unknown,
    data: unknown = request(),
    pattern = PATTERN,
    verified = true,
  ): Promise<ErrorReply> {
    const outcome = await firstValueFrom(
      filter.catch(exception, rpcHost(data, pattern, verified)),
    ).then(
      () => ({ emitted: true as const }),
      (error: unknown) => ({ emitted: false as const, error }),
    );
    if (outcome.emitted)
      throw new Error('the filter emitted instead of erroring');
    return outcome.error as ErrorReply;
  }

  beforeEach(async () => {
    now = NOW;
    loggedErrors = jest
      .spyOn(Logger.prototype, 'error')
      .mockImplementation(() => undefined);
    loggedWarnings = jest
      .spyOn(Logger.prototype, 'warn')
      .mockImplementation(() => undefined);
    observed = jest.fn();
    consume = jest.fn((_kid: string, _nonce: string, _ts: number) =>
      Promise.resolve<NonceVerdict>('accepted'),
    );
    const moduleRef = await Test.createTestingModule({
      providers: [
        ProtocolExceptionFilter,
        ReplySigner,
        {
          provide: RequestObserver,
          useValue: { finish: observed, admitted: jest.fn() },
        },
        { provide: NonceRecord, useValue: { consume } },
        { provide: APP_CONFIG, useValue: config },
        { provide: Clock, useValue: { now: () => now } },
      ],
    }).compile();
    filter = moduleRef.get(ProtocolExceptionFilter);
  });

  afterEach(() => {
    jest.restoreAllMocks();
  });

  describe('domain errors', () => {
    it('should turn a ProtocolError into a signed error reply', async () => {
      const reply = await replyTo(
        new ProtocolError(ErrorCode.STALE, { serverTime: NOW }),
      );

      expect(reply).toEqual({
        ok: false,
        ts: NOW,
        error: {
          code: ErrorCode.STALE,
          message: wireMessage(ErrorCode.STALE),
          serverTime: NOW,
        },
        mac: expect.stringMatching(/^[0-9a-f]{64}$/),
      });
      expect(reply.mac).toBe(expectedMac(DEFAULT_KEY, reply));
    });

    it('should report the code to the request observer (metrics, log line)', async () => {
      await replyTo(new ProtocolError(ErrorCode.REPLAY));

      expect(observed).toHaveBeenCalledTimes(1);
      expect(observed.mock.calls[0][1]).toMatchObject({
        code: ErrorCode.REPLAY,
      });
    });

    it("should bind the reply MAC to the request's pattern, kid, nonce and MAC", async () => {
      const reply = await replyTo(new ProtocolError(ErrorCode.REPLAY));

      expect(reply.mac).not.toBe(
        expectedMac(DEFAULT_KEY, reply, 'transactions.list'),
      );
      expect(reply.mac).not.toBe(
        expectedMac(DEFAULT_KEY, reply, PATTERN, 'default', 'A'.repeat(22)),
      );
      expect(reply.mac).not.toBe(
        expectedMac(
          DEFAULT_KEY,
          reply,
          PATTERN,
          'default',
          NONCE,
          'd'.repeat(64),
        ),
      );
      expect(reply.mac).not.toBe(expectedMac(OTHER_KEY, reply));
    });

    it('should sign with the key the request named', async () => {
      const reply = await replyTo(
        new ProtocolError(ErrorCode.STALE, { serverTime: NOW }),
        request({ kid: 'other' }),
      );

      expect(reply.mac).toBe(
        expectedMac(OTHER_KEY, reply, PATTERN, 'other', NONCE),
      );
    });

    it('should reproduce the error reply vector exactly', async () => {
      const vector = vectors.replies.find((r) => r.reply.ok === false)!;
      now = vector.reply.ts;

      const reply = await replyTo(
        new ProtocolError(ErrorCode.INVALID_CREDENTIALS),
        request({
          kid: vector.kid,
          nonce: vector.requestNonce,
          mac: vector.requestMac,
        }),
        vector.pattern,
      );

      expect(reply).toEqual(vector.reply);
    });

    it('should carry BAD_REQUEST fields into the reply', async () => {
      const fields = [{ field: 'payload.amount', problem: 'must be a string' }];

      const reply = await replyTo(ProtocolError.badRequest(fields));

      expect(reply.error).toEqual({
        code: ErrorCode.BAD_REQUEST,
        message: wireMessage(ErrorCode.BAD_REQUEST),
        fields,
      });
    });

    it('should not let details override the code or message', async () => {
      const reply = await replyTo(
        new ProtocolError(ErrorCode.RATE_LIMITED, {
          code: ErrorCode.INTERNAL,
          message: 'overridden',
          retryAfterMs: 1000,
        }),
      );

      expect(reply.error).toEqual({
        code: ErrorCode.RATE_LIMITED,
        message: wireMessage(ErrorCode.RATE_LIMITED),
        retryAfterMs: 1000,
      });
    });
  });

  describe('replies to requests whose MAC did not verify', () => {
    it.each([
      ['UNKNOWN_KEY', new ProtocolError(ErrorCode.UNKNOWN_KEY)],
      ['MAC_INVALID', new ProtocolError(ErrorCode.MAC_INVALID)],
      [
        'BAD_REQUEST',
        ProtocolError.badRequest([
          { field: 'envelope', problem: 'unknown field' },
        ]),
      ],
    ])(
      'should leave %s unsigned, even with a well-formed kid and nonce of a known key',
      async (_code, exception) => {
        const reply = await replyTo(exception, request(), PATTERN, false);

        expect(reply.mac).toBeNull();
        expect(reply.ok).toBe(false);
        expect(reply.ts).toBe(NOW);
      },
    );

    it.each([
      ['data that is not an object', 'not an envelope'],
      ['null data', null],
      ['an unknown kid', request({ kid: 'retired' })],
    ])('should leave mac null for %s', async (_what, data) => {
      const reply = await replyTo(
        new ProtocolError(ErrorCode.UNKNOWN_KEY),
        data,
        PATTERN,
        false,
      );

      expect(reply).toEqual({
        ok: false,
        ts: NOW,
        error: {
          code: ErrorCode.UNKNOWN_KEY,
          message: wireMessage(ErrorCode.UNKNOWN_KEY),
        },
        mac: null,
      });
    });

    it('should carry only the code, the fixed message and the fields', async () => {
      const reply = await replyTo(
        new ProtocolError(ErrorCode.BAD_REQUEST, {
          fields: [{ field: 'v', problem: 'must be the integer 2' }],
          serverTime: NOW,
          echoed: 'peer text',
        }),
        request({ v: 1 }),
        PATTERN,
        false,
      );

      expect(reply.error).toEqual({
        code: ErrorCode.BAD_REQUEST,
        message: wireMessage(ErrorCode.BAD_REQUEST),
        fields: [{ field: 'v', problem: 'must be the integer 2' }],
      });
    });

    it('should not give an errorId to an unexpected error before verification', async () => {
      const reply = await replyTo(new Error('boom'), request(), PATTERN, false);

      expect(reply).toMatchObject({
        error: { code: ErrorCode.INTERNAL },
        mac: null,
      });
      expect(reply.error).not.toHaveProperty('errorId');
    });
  });

  describe('unexpected errors', () => {
    it('should turn a plain Error into INTERNAL with an errorId and nothing else', async () => {
      const secret = 'connect to db.internal:5432 as admin failed';
      const error = new Error(secret);

      const reply = await replyTo(error);

      expect(reply.error).toEqual({
        code: ErrorCode.INTERNAL,
        message: wireMessage(ErrorCode.INTERNAL),
        errorId: expect.stringMatching(
          /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/,
        ),
      });
      expect(reply.mac).toBe(expectedMac(DEFAULT_KEY, reply));
      const wire = JSON.stringify(reply);
      expect(wire).not.toContain(secret);
      expect(wire).not.toContain('db.internal');
      expect(wire).not.toContain(error.stack!.split('\n')[1].trim());
    });

    it('should log the errorId with the detail the client does not get', async () => {
      const reply = await replyTo(new TypeError('x is undefined'));

      expect(loggedErrors).toHaveBeenCalledWith(
        expect.stringContaining(reply.error.errorId as string),
        expect.any(String),
      );
      expect(loggedErrors).toHaveBeenCalledWith(
        expect.stringContaining('x is undefined'),
        expect.any(String),
      );
    });

    it('should give each unexpected error its own errorId', async () => {
      const first = await replyTo(new Error('one'));
      const second = await replyTo(new Error('two'));

      expect(first.error.errorId).not.toBe(second.error.errorId);
    });

    it('should turn a thrown non-Error into INTERNAL without echoing it', async () => {
      const reply = await replyTo('secret string thrown');

      expect(reply.error.code).toBe(ErrorCode.INTERNAL);
      expect(JSON.stringify(reply)).not.toContain('secret string thrown');
    });

    it('should turn an unavailable dependency into UNAVAILABLE, logged without its message', async () => {
      const cause = Object.assign(
        new Error('connect ECONNREFUSED 10.0.0.5:3306'),
        { code: 'ECONNREFUSED' },
      );
      const reply = await replyTo(
        new UnavailableError('database', 'ECONNREFUSED', { cause }),
      );

      expect(reply.error).toEqual({
        code: ErrorCode.UNAVAILABLE,
        message: wireMessage(ErrorCode.UNAVAILABLE),
      });
      expect(reply.mac).toBe(expectedMac(DEFAULT_KEY, reply));
      expect(loggedWarnings).toHaveBeenCalledWith(
        expect.stringContaining('database unavailable (ECONNREFUSED)'),
      );
      expect(JSON.stringify(reply)).not.toContain('10.0.0.5');
      expect(JSON.stringify(loggedWarnings.mock.calls)).not.toContain(
        '10.0.0.5',
      );
    });

    it('should log an outage once per window, not once per request', async () => {
      for (let i = 0; i < 50; i += 1) {
        await replyTo(new UnavailableError('database', 'ECONNREFUSED'));
      }

      expect(loggedWarnings).toHaveBeenCalledTimes(1);
    });
  });

  describe('a nonce the guard left to the handler', () => {
    function pending(claimed = false): PendingNonce {
      return {
        kid: 'default',
        nonce: NONCE,
        ts: NOW,
        expiresAt: NOW + 1,
        claimed,
      };
    }

    async function replyWithPending(
      exception: unknown,
      nonce: PendingNonce,
    ): Promise<ErrorReply> {
      const host = rpcHost(request());
      deferNonce(host, nonce);
      return firstValueFrom(filter.catch(exception, host)).then(
        () => {
          throw new Error('the filter emitted instead of erroring');
        },
        (error: unknown) => error as ErrorReply,
      );
    }

    it('should record it when the request was refused before the handler recorded it', async () => {
      const reply = await replyWithPending(
        ProtocolError.badRequest([{ field: 'amount', problem: 'bad' }]),
        pending(),
      );

      expect(consume).toHaveBeenCalledWith('default', NONCE, NOW);
      expect(reply.error.code).toBe(ErrorCode.BAD_REQUEST);
      expect(reply.mac).toBe(expectedMac(DEFAULT_KEY, reply));
    });

    it('should answer REPLAY when the record already held it (replay precedes the payload check)', async () => {
      consume.mockResolvedValueOnce('replay');

      const reply = await replyWithPending(
        ProtocolError.badRequest([{ field: 'amount', problem: 'bad' }]),
        pending(),
      );

      expect(reply.error.code).toBe(ErrorCode.REPLAY);
    });

    it('should answer UNAVAILABLE when the record cannot be reached', async () => {
      consume.mockRejectedValueOnce(
        new UnavailableError('database', 'ECONNREFUSED'),
      );

      const reply = await replyWithPending(
        ProtocolError.badRequest([{ field: 'amount', problem: 'bad' }]),
        pending(),
      );

      expect(reply.error.code).toBe(ErrorCode.UNAVAILABLE);
    });

    it('should leave it alone once the handler has claimed it', async () => {
      const reply = await replyWithPending(
        new ProtocolError(ErrorCode.UNAUTHENTICATED),
        pending(true),
      );

      expect(consume).not.toHaveBeenCalled();
      expect(reply.error.code).toBe(ErrorCode.UNAUTHENTICATED);
    });
  });
});
