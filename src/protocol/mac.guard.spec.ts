import { testConfig } from '../../test/support/config';
import { ExecutionContext } from '@nestjs/common';
import { ExecutionContextHost } from '@nestjs/core/helpers/execution-context-host';
import { Test } from '@nestjs/testing';
import { APP_CONFIG, AppConfig } from '../config/config';
import { Clock } from '../common/clock';
import { ErrorCode } from '@pai/client/protocol/error-code';
import { MacGuard } from './mac.guard';
import { hmacHex, requestMacInput } from '@pai/client/protocol/mac';
import { NonceRecord, type NonceVerdict } from '../nonce-record/nonce-record';
import { pendingNonceOf, verifiedRequestOf } from './verified-request';
import { WRITES_NONCE } from './writes-nonce';

const NOW = 1764288000000;
const WINDOW_MS = 300_000;
const PATTERN = 'auth.login';
const DEFAULT_KEY = Buffer.alloc(32, 1);
const ROTATED_KEY = Buffer.alloc(32, 2);

const config: AppConfig = testConfig({
  macKeys: { default: DEFAULT_KEY, '2026-11': ROTATED_KEY },
  macWindowMs: WINDOW_MS,
});

/** Records every consume() and refuses a (kid, nonce) pair it has seen, as the real store does. */
class FakeNonceRecord {
  readonly calls: Array<[string, string, number]> = [];
  private readonly seen = new Set<string>();

  consume(kid: string, nonce: string, ts: number): Promise<NonceVerdict> {
    this.calls.push([kid, nonce, ts]);
    const entry = `${kid}\n${nonce}`;
    if (this.seen.has(entry)) return Promise.resolve('replay');
    this.seen.add(entry);
    return Promise.resolve('accepted');
  }
}

interface EnvelopeOptions {
  pattern?: string;
  kid?: string;
  key?: Buffer;
  ts?: number;
  nonce?: string;
  payload?: Record<string, unknown>;
}

function signedEnvelope(options: EnvelopeOptions = {}) {
  const kid = options.kid ?? 'default';
  const fields = {
    kid,
    ts: options.ts ?? NOW,
    nonce: options.nonce ?? 'AAAAAAAAAAAAAAAAAAAAAA',
    payload: options.payload ?? { username: 'alice', password: 'pw123456' },
  };
  const key = options.key ?? config.macKeys.get(kid) ?? DEFAULT_KEY;
  const mac = hmacHex(key, requestMacInput(options.pattern ?? PATTERN, fields));
  return { v: 2, ...fields, mac };
}

function rpcContext(data: unknown, pattern = PATTERN): ExecutionContext {
  const host = new ExecutionContextHost([data, { getPattern: () => pattern }]);
  host.setType('rpc');
  return host;
}

describe(MacGuard.name, () => {
  let guard: MacGuard;
  let nonces: FakeNonceRecord;

  beforeEach(async () => {
    nonces = new FakeNonceRecord();
    const moduleRef = await Test.createTestingModule({
      providers: [
        MacGuard,
        { provide: APP_CONFIG, useValue: config },
        { provide: Clock, useValue: { now: () => NOW } },
        { provide: NonceRecord, useValue: nonces },
      ],
    }).compile();
    guard = moduleRef.get(MacGuard);
  });

  describe('accepted messages', () => {
    it('should accept a well-formed, signed, fresh and new message', async () => {
      await expect(
        guard.canActivate(rpcContext(signedEnvelope())),
      ).resolves.toBe(true);
    });

    it('should record the nonce with (kid, nonce, ts) once every check passed', async () => {
      const envelope = signedEnvelope({
        ts: NOW - 1234,
        nonce: 'nonce_with-dash_and_underscore',
      });

      await expect(guard.canActivate(rpcContext(envelope))).resolves.toBe(true);
      expect(nonces.calls).toEqual([
        ['default', 'nonce_with-dash_and_underscore', NOW - 1234],
      ]);
    });

    it('should accept a message signed with any configured key', async () => {
      const envelope = signedEnvelope({ kid: '2026-11' });

      await expect(guard.canActivate(rpcContext(envelope))).resolves.toBe(true);
      expect(nonces.calls).toEqual([['2026-11', envelope.nonce, NOW]]);
    });

    it.each([
      ['in the past', NOW - WINDOW_MS],
      ['in the future', NOW + WINDOW_MS],
    ])(
      'should accept a timestamp exactly at the window edge %s',
      async (_when, ts) => {
        await expect(
          guard.canActivate(rpcContext(signedEnvelope({ ts }))),
        ).resolves.toBe(true);
      },
    );
  });

  describe('step 1: envelope form', () => {
    it('should refuse a malformed envelope with BAD_REQUEST naming the fields', async () => {
      const envelope = { ...signedEnvelope(), v: 1, extra: true };

      await expect(
        guard.canActivate(rpcContext(envelope)),
      ).rejects.toMatchObject({
        code: ErrorCode.BAD_REQUEST,
        details: {
          fields: expect.arrayContaining([
            expect.objectContaining({ field: 'v' }),
            expect.objectContaining({ field: 'envelope' }),
          ]),
        },
      });
      expect(nonces.calls).toEqual([]);
    });

    it.each([
      ['null', null],
      ['an array', []],
      ['a string', 'envelope'],
    ])(
      'should refuse %s as the envelope with BAD_REQUEST',
      async (_what, data) => {
        await expect(guard.canActivate(rpcContext(data))).rejects.toMatchObject(
          {
            code: ErrorCode.BAD_REQUEST,
            details: { fields: [expect.objectContaining({ field: 'data' })] },
          },
        );
        expect(nonces.calls).toEqual([]);
      },
    );

    it.each([
      ['a lone surrogate in a value', '{"note":"\\ud800"}'],
      ['a lone surrogate in a key', '{"\\udc00":1}'],
      ['a number beyond double range', '{"amount":1e400}'],
    ])(
      'should refuse %s (no canonical form) with BAD_REQUEST, before the key is looked up',
      async (_what, payloadJson) => {
        const envelope = {
          ...signedEnvelope(),
          kid: 'no-such-key',
          payload: JSON.parse(payloadJson) as unknown,
        };

        await expect(
          guard.canActivate(rpcContext(envelope)),
        ).rejects.toMatchObject({
          code: ErrorCode.BAD_REQUEST,
          details: { fields: [expect.objectContaining({ field: 'payload' })] },
        });
        expect(nonces.calls).toEqual([]);
      },
    );

    it('should refuse a payload that is not an object even when correctly signed', async () => {
      const envelope = { ...signedEnvelope(), payload: [] };

      await expect(
        guard.canActivate(rpcContext(envelope)),
      ).rejects.toMatchObject({
        code: ErrorCode.BAD_REQUEST,
        details: { fields: [expect.objectContaining({ field: 'payload' })] },
      });
    });
  });

  describe('step 2: key id', () => {
    it('should refuse a kid that names no configured key with UNKNOWN_KEY', async () => {
      const envelope = signedEnvelope({ kid: 'retired', key: DEFAULT_KEY });

      await expect(
        guard.canActivate(rpcContext(envelope)),
      ).rejects.toMatchObject({ code: ErrorCode.UNKNOWN_KEY });
      expect(nonces.calls).toEqual([]);
    });

    it('should not mistake an inherited property name for a key', async () => {
      const envelope = signedEnvelope({ kid: 'constructor', key: DEFAULT_KEY });

      await expect(
        guard.canActivate(rpcContext(envelope)),
      ).rejects.toMatchObject({ code: ErrorCode.UNKNOWN_KEY });
    });
  });

  describe('step 3: MAC', () => {
    it('should refuse a tampered payload with MAC_INVALID', async () => {
      const envelope = signedEnvelope();
      const tampered = {
        ...envelope,
        payload: { ...envelope.payload, username: 'mallory' },
      };

      await expect(
        guard.canActivate(rpcContext(tampered)),
      ).rejects.toMatchObject({ code: ErrorCode.MAC_INVALID });
      expect(nonces.calls).toEqual([]);
    });

    it.each([
      ['ts', { ts: NOW + 1 }],
      ['nonce', { nonce: 'BBBBBBBBBBBBBBBBBBBBBB' }],
      ['kid', { kid: '2026-11' }],
    ])(
      'should refuse a message whose %s was changed after signing with MAC_INVALID',
      async (_field, changes) => {
        const envelope = { ...signedEnvelope(), ...changes };

        await expect(
          guard.canActivate(rpcContext(envelope)),
        ).rejects.toMatchObject({ code: ErrorCode.MAC_INVALID });
        expect(nonces.calls).toEqual([]);
      },
    );

    it('should refuse the same envelope sent under another pattern with MAC_INVALID', async () => {
      const envelope = signedEnvelope({ pattern: 'auth.login' });

      await expect(
        guard.canActivate(rpcContext(envelope, 'auth.register')),
      ).rejects.toMatchObject({ code: ErrorCode.MAC_INVALID });
      expect(nonces.calls).toEqual([]);
    });

    it('should refuse a MAC made with another configured key with MAC_INVALID', async () => {
      const envelope = signedEnvelope({ kid: 'default', key: ROTATED_KEY });

      await expect(
        guard.canActivate(rpcContext(envelope)),
      ).rejects.toMatchObject({ code: ErrorCode.MAC_INVALID });
    });
  });

  describe('step 4: freshness', () => {
    it.each([
      ['in the past', NOW - WINDOW_MS - 1],
      ['in the future', NOW + WINDOW_MS + 1],
    ])(
      'should refuse a timestamp one millisecond outside the window %s with STALE and serverTime',
      async (_when, ts) => {
        await expect(
          guard.canActivate(rpcContext(signedEnvelope({ ts }))),
        ).rejects.toMatchObject({
          code: ErrorCode.STALE,
          details: { serverTime: NOW },
        });
        expect(nonces.calls).toEqual([]);
      },
    );
  });

  describe('step 5: replay', () => {
    it('should refuse a second copy of an accepted message with REPLAY', async () => {
      const envelope = signedEnvelope();

      await expect(guard.canActivate(rpcContext(envelope))).resolves.toBe(true);
      await expect(
        guard.canActivate(rpcContext(structuredClone(envelope))),
      ).rejects.toMatchObject({ code: ErrorCode.REPLAY });
      expect(nonces.calls).toHaveLength(2);
    });

    it('should refuse as STALE, with the server time, a message the record cannot vouch for', async () => {
      jest.spyOn(nonces, 'consume').mockResolvedValue('stale');

      await expect(
        guard.canActivate(rpcContext(signedEnvelope())),
      ).rejects.toMatchObject({
        code: ErrorCode.STALE,
        details: { serverTime: NOW },
      });
    });
  });

  describe('a nonce left to a handler that writes it (@WritesNonce)', () => {
    const writesNonce = () => undefined;
    Reflect.defineMetadata(WRITES_NONCE, true, writesNonce);

    async function guardWith(kind: 'database' | 'memory'): Promise<MacGuard> {
      const moduleRef = await Test.createTestingModule({
        providers: [
          MacGuard,
          {
            provide: APP_CONFIG,
            useValue: { ...config, nonceRecord: { kind } },
          },
          { provide: Clock, useValue: { now: () => NOW } },
          { provide: NonceRecord, useValue: nonces },
        ],
      }).compile();
      return moduleRef.get(MacGuard);
    }

    function handlerContext(
      envelope: unknown,
      handler: () => void,
    ): ExecutionContext {
      const host = new ExecutionContextHost(
        [envelope, { getPattern: () => PATTERN }],
        undefined,
        handler,
      );
      host.setType('rpc');
      return host;
    }

    it('should defer the nonce to the handler with the database record', async () => {
      const deferring = await guardWith('database');
      const envelope = signedEnvelope({ ts: NOW - 5 });
      const context = handlerContext(envelope, writesNonce);

      await expect(deferring.canActivate(context)).resolves.toBe(true);
      expect(nonces.calls).toEqual([]);
      expect(pendingNonceOf(context)).toMatchObject({
        kid: 'default',
        nonce: envelope.nonce,
        ts: NOW - 5,
        expiresAt: NOW - 5 + config.macWindowMs,
        claimed: false,
      });
    });

    it('should record the nonce itself for a handler that does not write it', async () => {
      const deferring = await guardWith('database');
      const context = handlerContext(signedEnvelope(), () => undefined);

      await expect(deferring.canActivate(context)).resolves.toBe(true);
      expect(nonces.calls).toHaveLength(1);
      expect(pendingNonceOf(context)).toBeUndefined();
    });

    it('should record the nonce itself with a record outside the database', async () => {
      const memory = await guardWith('memory');
      const context = handlerContext(signedEnvelope(), writesNonce);

      await expect(memory.canActivate(context)).resolves.toBe(true);
      expect(nonces.calls).toHaveLength(1);
      expect(pendingNonceOf(context)).toBeUndefined();
    });
  });

  describe('check order', () => {
    it('should report BAD_REQUEST before UNKNOWN_KEY', async () => {
      const envelope = {
        ...signedEnvelope({ kid: 'retired', key: DEFAULT_KEY }),
        v: 1,
      };

      await expect(
        guard.canActivate(rpcContext(envelope)),
      ).rejects.toMatchObject({ code: ErrorCode.BAD_REQUEST });
    });

    it('should report UNKNOWN_KEY before MAC_INVALID', async () => {
      const envelope = {
        ...signedEnvelope(),
        kid: 'retired',
        mac: '0'.repeat(64),
      };

      await expect(
        guard.canActivate(rpcContext(envelope)),
      ).rejects.toMatchObject({ code: ErrorCode.UNKNOWN_KEY });
    });

    it('should report MAC_INVALID before STALE', async () => {
      const envelope = {
        ...signedEnvelope({ ts: NOW - WINDOW_MS - 1 }),
        mac: '0'.repeat(64),
      };

      await expect(
        guard.canActivate(rpcContext(envelope)),
      ).rejects.toMatchObject({ code: ErrorCode.MAC_INVALID });
    });

    it('should report STALE before REPLAY and leave the nonce store alone', async () => {
      const nonce = 'ReplayedNonce-0000000';
      await expect(
        guard.canActivate(rpcContext(signedEnvelope({ nonce }))),
      ).resolves.toBe(true);

      const stale = signedEnvelope({ nonce, ts: NOW - WINDOW_MS - 1 });

      await expect(guard.canActivate(rpcContext(stale))).rejects.toMatchObject({
        code: ErrorCode.STALE,
      });
      expect(nonces.calls).toEqual([['default', nonce, NOW]]);
    });
  });

  describe('what the reply is bound to', () => {
    it('should mark an accepted message verified with its pattern, kid, nonce, MAC and key', async () => {
      const envelope = signedEnvelope({ kid: '2026-11' });
      const context = rpcContext(envelope);

      await guard.canActivate(context);

      expect(verifiedRequestOf(context)).toEqual({
        pattern: PATTERN,
        kid: '2026-11',
        nonce: envelope.nonce,
        mac: envelope.mac,
        key: ROTATED_KEY,
      });
    });

    it.each([
      ['STALE', { ts: NOW - WINDOW_MS - 1 }],
      ['REPLAY', {}],
    ])(
      'should mark a message refused as %s verified: its MAC matched',
      async (code, options) => {
        await guard.canActivate(rpcContext(signedEnvelope()));
        const context = rpcContext(signedEnvelope(options));

        await expect(guard.canActivate(context)).rejects.toMatchObject({
          code,
        });
        expect(verifiedRequestOf(context)?.mac).toBe(
          signedEnvelope(options).mac,
        );
      },
    );

    it.each([
      ['BAD_REQUEST', { ...signedEnvelope(), v: 1 }],
      ['UNKNOWN_KEY', { ...signedEnvelope(), kid: 'nobody' }],
      ['MAC_INVALID', { ...signedEnvelope(), mac: 'f'.repeat(64) }],
    ])(
      'should leave a message refused as %s unverified, so its reply is not signed',
      async (code, envelope) => {
        const context = rpcContext(envelope);

        await expect(guard.canActivate(context)).rejects.toMatchObject({
          code,
        });
        expect(verifiedRequestOf(context)).toBeUndefined();
      },
    );
  });
});
