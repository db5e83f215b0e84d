/**
 * Generators of hostile requests for the fuzz and heap suites: signed envelopes with one mutation
 * each (a flipped MAC bit, a skewed ts, a field retyped or deleted…), and requests whose `data` is
 * any JSON at all. The oracle (oracle.ts) says how the guard must answer each.
 */
import fc from 'fast-check';
import { TEST_KEYS } from '../test-app';
import { ENVELOPE_FIELDS, WINDOW_MS, setOwn, sign } from './oracle';

const BASE64URL =
  'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const b64urlChar = fc.constantFrom(...BASE64URL.split(''));
export const nonceArb = fc.string({
  unit: b64urlChar,
  minLength: 22,
  maxLength: 40,
});

/** Property names that have tripped JavaScript services before. */
const NASTY_KEYS = [
  '__proto__',
  'constructor',
  'prototype',
  'toString',
  'hasOwnProperty',
  'valueOf',
  '__defineGetter__',
  'then',
];
const keyArb = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom(...NASTY_KEYS) },
  // JSON allows them, RFC 8785 does not: such a payload cannot be signed, and is refused at the
  // form step. Rare: the fuzz suite has tests of its own for them.
  { weight: 1, arbitrary: fc.constantFrom('\ud800', 'a\udfff') },
  { weight: 12, arbitrary: fc.string({ unit: 'binary', maxLength: 12 }) },
  { weight: 12, arbitrary: fc.string({ maxLength: 12 }) },
);

/** A payload object: unicode and binary strings, awkward keys, moderate nesting. */
const payloadArb: fc.Arbitrary<Record<string, unknown>> = fc.oneof(
  { weight: 12, arbitrary: fc.constant({}) },
  {
    weight: 16,
    arbitrary: fc
      .array(
        fc.tuple(keyArb, fc.jsonValue({ maxDepth: 3, stringUnit: 'binary' })),
        { minLength: 1, maxLength: 5 },
      )
      .map((entries) => {
        const payload = {};
        for (const [key, value] of entries) setOwn(payload, key, value);
        return payload;
      }),
  },
  {
    weight: 1,
    arbitrary: fc
      .tuple(
        fc.integer({ min: 1_000, max: 20_000 }),
        fc.constantFrom('a', 'é', '😀', '\u0000', '\\', '"', '\ud800'),
      )
      // Kept under the frame limit once escaped: an oversized frame would close the connection.
      .map(([length, unit]) => ({
        huge: unit.repeat(
          Math.min(
            length,
            Math.floor(30_000 / (JSON.stringify(unit).length - 2)),
          ),
        ),
      })),
  },
  {
    weight: 1,
    arbitrary: fc.integer({ min: 10, max: 600 }).map((depth) => ({
      deep: JSON.parse('['.repeat(depth) + ']'.repeat(depth)) as unknown,
    })),
  },
  {
    weight: 1,
    arbitrary: fc
      .constantFrom(
        '{"__proto__":{"polluted":1}}',
        '{"constructor":{"prototype":{"polluted":1}}}',
        '{"token":"x","__proto__":{"isAdmin":true}}',
        '{"__proto__":null}',
        '{"prototype":{"polluted":1},"toString":"x"}',
      )
      .map((json) => JSON.parse(json) as Record<string, unknown>),
  },
);

/** Patterns whose handlers stay cheap for any payload (no bcrypt), plus unknown and odd ones. */
const patternArb = fc.oneof(
  { weight: 6, arbitrary: fc.constant('system.ping') },
  {
    weight: 3,
    arbitrary: fc.constantFrom(
      'users.me',
      'transactions.list',
      'transactions.create',
      'auth.logout',
      'accounts.drain',
      '{"cmd":"system.ping"}',
      '__proto__',
      'constructor',
      'pai.unknown-pattern',
    ),
  },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 20 }) },
);

export type Mutation =
  | { kind: 'valid' }
  | { kind: 'macFlip'; position: number; bit: number }
  | { kind: 'macForm'; mac: unknown }
  | { kind: 'deleteField'; field: string }
  | { kind: 'retypeField'; field: string; value: unknown }
  | { kind: 'skew'; offset: number }
  | { kind: 'unknownKid'; kid: string }
  | { kind: 'wrongKey' }
  | { kind: 'nonceForm'; nonce: string }
  | { kind: 'extraField'; field: string; value: unknown }
  | { kind: 'payloadTamper'; key: string }
  | { kind: 'patternSwap'; pattern: string }
  | { kind: 'event' };

export interface Recipe {
  pattern: string;
  kid: string;
  nonce: string;
  /** Offset of ts from the sender's clock, inside the window by a wide margin. */
  offset: number;
  payload: Record<string, unknown>;
  mutation: Mutation;
}

/** Far outside the window either way, and now and then inside it (accepted). */
const skewArb = fc.oneof(
  {
    weight: 10,
    arbitrary: fc.integer({
      min: WINDOW_MS + 60_000,
      max: 10 * 365 * 86_400_000,
    }),
  },
  {
    weight: 10,
    arbitrary: fc.integer({
      min: -10 * 365 * 86_400_000,
      max: -(WINDOW_MS + 60_000),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.integer({
      min: -(WINDOW_MS - 60_000),
      max: WINDOW_MS - 60_000,
    }),
  },
);

export const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  // Accepted messages are few on purpose: each one costs a durable database write.
  { weight: 1, arbitrary: fc.constant({ kind: 'valid' as const }) },
  {
    weight: 30,
    arbitrary: fc.record({
      kind: fc.constant('macFlip' as const),
      position: fc.nat(63),
      bit: fc.nat(3),
    }),
  },
  {
    weight: 10,
    arbitrary: fc.record({
      kind: fc.constant('macForm' as const),
      mac: fc.oneof(
        fc.constant(null),
        fc.string({ unit: 'binary', maxLength: 70 }),
        fc.constantFrom('A'.repeat(64), '0'.repeat(63), '0'.repeat(65)),
        fc.jsonValue({ maxDepth: 2 }),
      ),
    }),
  },
  {
    weight: 20,
    arbitrary: fc.record({
      kind: fc.constant('deleteField' as const),
      field: fc.constantFrom(...ENVELOPE_FIELDS),
    }),
  },
  {
    weight: 30,
    arbitrary: fc.record({
      kind: fc.constant('retypeField' as const),
      field: fc.constantFrom(...ENVELOPE_FIELDS),
      value: fc.oneof(
        fc.jsonValue({ maxDepth: 2, stringUnit: 'binary' }),
        fc.constantFrom(
          '1',
          1.5,
          -1,
          2 ** 53,
          1e300,
          true,
          [],
          {},
          '',
          'default',
        ),
      ),
    }),
  },
  {
    weight: 20,
    arbitrary: fc.record({
      kind: fc.constant('skew' as const),
      offset: skewArb,
    }),
  },
  {
    weight: 10,
    arbitrary: fc.record({
      kind: fc.constant('unknownKid' as const),
      kid: fc.oneof(
        fc.constantFrom(
          ...NASTY_KEYS,
          'DEFAULT',
          'default ',
          '2026-1',
          'retired',
        ),
        fc.string({ unit: 'binary', minLength: 0, maxLength: 70 }),
        fc.string({
          unit: fc.constantFrom(...'abcXYZ019._-'.split('')),
          minLength: 1,
          maxLength: 64,
        }),
      ),
    }),
  },
  { weight: 10, arbitrary: fc.constant({ kind: 'wrongKey' as const }) },
  {
    weight: 20,
    arbitrary: fc.record({
      kind: fc.constant('nonceForm' as const),
      nonce: fc.oneof(
        fc.string({ unit: b64urlChar, minLength: 0, maxLength: 15 }),
        fc.string({ unit: b64urlChar, minLength: 129, maxLength: 200 }),
        fc.string({ unit: 'binary', minLength: 16, maxLength: 40 }),
        fc.string({ unit: 'grapheme', minLength: 16, maxLength: 40 }),
        fc.constantFrom(
          'A'.repeat(16) + '=',
          'A'.repeat(16) + '\n',
          'ÄAAAAAAAAAAAAAAAAA',
        ),
      ),
    }),
  },
  {
    weight: 20,
    arbitrary: fc.record({
      kind: fc.constant('extraField' as const),
      // Lone surrogates included: the reply names the field, and must still be signable.
      field: fc.oneof(keyArb, fc.constantFrom('V', 'Mac', 'id', 'pattern')),
      value: fc.jsonValue({ maxDepth: 2 }),
    }),
  },
  {
    weight: 10,
    arbitrary: fc.record({
      kind: fc.constant('payloadTamper' as const),
      key: keyArb,
    }),
  },
  {
    weight: 10,
    arbitrary: fc.record({
      kind: fc.constant('patternSwap' as const),
      pattern: patternArb,
    }),
  },
  { weight: 10, arbitrary: fc.constant({ kind: 'event' as const }) },
);

export const recipeArb: fc.Arbitrary<Recipe> = fc.record({
  pattern: patternArb,
  kid: fc.constantFrom(...Object.keys(TEST_KEYS)),
  nonce: nonceArb,
  offset: fc.integer({ min: -(WINDOW_MS - 60_000), max: WINDOW_MS - 60_000 }),
  payload: payloadArb,
  mutation: mutationArb,
});

/** A request whose `data` is any JSON value, or an object of envelope fields with any values. */
export const randomDataArb = fc.record({
  pattern: patternArb,
  data: fc.oneof(
    fc.jsonValue({ maxDepth: 4, stringUnit: 'binary' }),
    fc.record(
      {
        v: fc.oneof(fc.constant(1), fc.jsonValue({ maxDepth: 1 })),
        kid: fc.oneof(
          fc.constantFrom(...Object.keys(TEST_KEYS)),
          fc.jsonValue({ maxDepth: 1 }),
        ),
        ts: fc.oneof(fc.integer(), fc.double(), fc.jsonValue({ maxDepth: 1 })),
        nonce: fc.oneof(nonceArb, fc.jsonValue({ maxDepth: 1 })),
        payload: fc.oneof(fc.constant({}), fc.jsonValue({ maxDepth: 2 })),
        mac: fc.oneof(
          fc.stringMatching(/^[0-9a-f]{64}$/),
          fc.jsonValue({ maxDepth: 1 }),
        ),
      },
      { requiredKeys: [] },
    ),
  ),
});

export interface Built {
  pattern: string;
  data: unknown;
  /** False for an event (no `id`): the service answers nothing and runs no handler. */
  request: boolean;
}

/** Signs the recipe's envelope at `now`, then applies its mutation to the signed message. */
export function build(recipe: Recipe, now: number): Built {
  const { mutation } = recipe;
  let { kid, pattern } = recipe;
  let ts = now + recipe.offset;
  let nonce = recipe.nonce;
  let key = TEST_KEYS[kid];
  if (mutation.kind === 'skew') ts = now + mutation.offset;
  if (mutation.kind === 'unknownKid') kid = mutation.kid;
  if (mutation.kind === 'wrongKey')
    key = TEST_KEYS[kid === 'default' ? '2026-11' : 'default'];
  if (mutation.kind === 'nonceForm') nonce = mutation.nonce;
  const payload = recipe.payload;
  const envelope: Record<string, unknown> = {
    v: 2,
    kid,
    ts,
    nonce,
    payload,
    mac: sign(pattern, { kid, ts, nonce, payload }, key),
  };
  switch (mutation.kind) {
    case 'macFlip': {
      const mac = envelope.mac as string;
      const digit = parseInt(mac[mutation.position], 16) ^ (1 << mutation.bit);
      envelope.mac =
        mac.slice(0, mutation.position) +
        digit.toString(16) +
        mac.slice(mutation.position + 1);
      break;
    }
    case 'macForm':
      envelope.mac = mutation.mac;
      break;
    case 'deleteField':
      delete envelope[mutation.field];
      break;
    case 'retypeField':
      envelope[mutation.field] = mutation.value;
      break;
    case 'extraField':
      setOwn(envelope, mutation.field, mutation.value);
      break;
    case 'payloadTamper': {
      const tampered = { ...payload };
      setOwn(tampered, mutation.key, 'tampered');
      envelope.payload = tampered;
      break;
    }
    case 'patternSwap':
      pattern = mutation.pattern === pattern ? `${pattern}.` : mutation.pattern;
      break;
    default:
      break;
  }
  return { pattern, data: envelope, request: mutation.kind !== 'event' };
}
