/**
 * Hostile traffic for the fuzz and heap suites: generators of mutated envelopes, random requests
 * and garbage frames, and an oracle that predicts, from PROTOCOL.md alone, how the guard must
 * answer each of them. Nothing here imports the service's protocol code: the checks, the MACs
 * and the framing are written again from the spec (RFC 8785 aside), so the suites test the
 * contract rather than agreement between two copies of one implementation.
 */
import canonicalize from 'canonicalize';
import fc from 'fast-check';
import { createHmac } from 'node:crypto';
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { StringDecoder } from 'node:string_decoder';
import type { DataSource } from 'typeorm';
import { RawClient, replyVerifies, type WireReply } from './raw-client';
import { TEST_KEYS } from './test-app';

export const WINDOW_MS = 300_000;

const KID = /^[A-Za-z0-9._-]{1,64}$/;
const NONCE = /^[A-Za-z0-9_-]{16,128}$/;
const MAC = /^[0-9a-f]{64}$/;
const ENVELOPE_FIELDS = ['v', 'kid', 'ts', 'nonce', 'payload', 'mac'];

/** PROTOCOL.md 4, every code. */
export const ERROR_CODES = new Set([
  'BAD_REQUEST',
  'UNKNOWN_KEY',
  'MAC_INVALID',
  'STALE',
  'REPLAY',
  'USERNAME_TAKEN',
  'INVALID_CREDENTIALS',
  'UNAUTHENTICATED',
  'RATE_LIMITED',
  'IDEMPOTENCY_CONFLICT',
  'UNAVAILABLE',
  'INTERNAL',
]);
/** The codes of checks 1-3: before the MAC verified, so their replies are never signed. */
const UNSIGNED_CODES = new Set(['BAD_REQUEST', 'UNKNOWN_KEY', 'MAC_INVALID']);

/** The fields an unsigned BAD_REQUEST may name: the protocol's own, never the peer's text. */
const UNSIGNED_FIELDS = new Set([...ENVELOPE_FIELDS, 'data', 'envelope']);

/** An unsigned error holds the code, its fixed message and, for BAD_REQUEST, fixed problems. */
function unsignedErrorProblems(error: unknown): string[] {
  if (!isObject(error)) return [];
  const problems: string[] = [];
  const extras = Object.keys(error).filter(
    (key) => key !== 'code' && key !== 'message' && key !== 'fields',
  );
  if (extras.length > 0)
    problems.push(`unsigned reply with extra fields [${extras.join(',')}]`);
  if (error.fields !== undefined) {
    if (error.code !== 'BAD_REQUEST')
      problems.push('fields outside BAD_REQUEST');
    const named = Array.isArray(error.fields) ? error.fields : [];
    for (const entry of named) {
      if (!isObject(entry) || !UNSIGNED_FIELDS.has(String(entry.field)))
        problems.push('unsigned reply names a field of the peer');
    }
  }
  return problems;
}

/** Codes only the guard gives: a message that passed it can never get one of these. */
const GUARD_CODES = new Set(['UNKNOWN_KEY', 'MAC_INVALID', 'STALE', 'REPLAY']);

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

const hasKey = (kid: unknown): kid is string =>
  typeof kid === 'string' && Object.hasOwn(TEST_KEYS, kid);

const hmac = (key: Buffer, text: string) =>
  createHmac('sha256', key).update(Buffer.from(text, 'utf8')).digest('hex');

/** Sets a property even when its name is `__proto__`, which plain assignment would not. */
export function setOwn(target: object, key: string, value: unknown): void {
  Object.defineProperty(target, key, {
    value,
    enumerable: true,
    writable: true,
    configurable: true,
  });
}

/**
 * RFC 8785 form, or undefined for a value that has none: JCS refuses strings with a lone
 * surrogate (`"\ud800"`), which JSON itself allows, so such a payload cannot be signed at all.
 */
export function jcs(value: unknown): string | undefined {
  try {
    return canonicalize(value);
  } catch {
    return undefined;
  }
}

/** The request MAC; for a payload with no canonical form, a MAC that cannot match. */
export function sign(
  pattern: string,
  fields: { kid: string; ts: number; nonce: string; payload: unknown },
  key: Buffer,
): string {
  const payload = jcs(fields.payload);
  if (payload === undefined) return 'f'.repeat(64);
  return hmac(
    key,
    `PAI-MAC-V2\n${pattern}\n${fields.kid}\n${fields.ts}\n${fields.nonce}\n${payload}`,
  );
}

export type Verdict =
  'PASS' | 'BAD_REQUEST' | 'UNKNOWN_KEY' | 'MAC_INVALID' | 'STALE' | 'REPLAY';

export interface Expectation {
  /** What the guard must answer; several when the spec leaves it open. */
  verdicts: Verdict[];
  /**
   * The request the reply must be signed for, with the key, once its MAC matched (checks 1-3
   * passed); null when it cannot match, and the reply must be unsigned.
   */
  binding: { kid: string; nonce: string; mac: string; key: Buffer } | null;
  /** The payload has no RFC 8785 form (a lone surrogate), so no MAC can match it. */
  uncanonical?: boolean;
}

let startCutoff = -Infinity;

/**
 * The in-memory nonce record (the single-instance default) refuses, as STALE, every message dated
 * at or before its process's start: what it accepted before a restart is gone from memory. The
 * database record has no such rule (-Infinity).
 */
export function setStartCutoff(ms: number): void {
  startCutoff = ms;
}

/**
 * PROTOCOL.md 3, checks 1-5 in order, for `data` sent under `pattern` at `now`.
 * `accepted` holds the `kid\nnonce` pairs the service has accepted so far.
 */
export function expectGuard(
  pattern: string,
  data: unknown,
  now: number,
  accepted: ReadonlySet<string>,
): Expectation {
  let binding: Expectation['binding'] = null;
  const result = (...verdicts: Verdict[]): Expectation => ({
    verdicts,
    binding,
  });
  if (!isObject(data)) return result('BAD_REQUEST');
  const { v, kid, ts, nonce, payload, mac } = data;
  const formOk =
    Object.keys(data).every((field) => ENVELOPE_FIELDS.includes(field)) &&
    v === 2 &&
    typeof kid === 'string' &&
    KID.test(kid) &&
    typeof ts === 'number' &&
    Number.isInteger(ts) &&
    typeof nonce === 'string' &&
    NONCE.test(nonce) &&
    isObject(payload) &&
    typeof mac === 'string' &&
    MAC.test(mac);
  if (!formOk) return result('BAD_REQUEST');
  const tsText = String(ts);
  // The spec says "integer"; a negative one or one past 2^53 has no exact decimal form in every
  // implementation, so refusing its form is as right as calling it stale.
  const loose = ts < 0 || !Number.isSafeInteger(ts);
  // A payload with no canonical form cannot have been signed: still part of the form (step 1),
  // before the key is looked up.
  const canonical = jcs(payload);
  if (canonical === undefined) {
    return { ...result('BAD_REQUEST'), uncanonical: true };
  }
  if (!hasKey(kid))
    return loose ? result('BAD_REQUEST', 'UNKNOWN_KEY') : result('UNKNOWN_KEY');
  const expected = hmac(
    TEST_KEYS[kid],
    `PAI-MAC-V2\n${pattern}\n${kid}\n${tsText}\n${nonce}\n${canonical}`,
  );
  if (expected !== mac)
    return loose ? result('BAD_REQUEST', 'MAC_INVALID') : result('MAC_INVALID');
  binding = { kid, nonce, mac, key: TEST_KEYS[kid] };
  if (Math.abs(ts - now) > WINDOW_MS)
    return loose ? result('BAD_REQUEST', 'STALE') : result('STALE');
  if (ts <= startCutoff) return result('STALE');
  if (accepted.has(`${kid}\n${nonce}`)) return result('REPLAY');
  return result('PASS');
}

/**
 * Problems with one reply, given the expectation for its request; empty when it is right.
 * A message that passed the guard may be refused by its handler (payload, pattern) but never
 * with a guard code, and is answered `ok` only by a ping with an empty payload.
 */
export function replyProblems(
  reply: WireReply,
  pattern: string,
  data: unknown,
  expectation: Expectation,
): string[] {
  const problems: string[] = [];
  if (!isObject(reply)) return ['reply is not an object'];
  const keys = Object.keys(reply).sort().join(',');
  if (typeof reply.ts !== 'number' || !Number.isSafeInteger(reply.ts))
    problems.push('reply ts is not an integer');
  const passed = expectation.verdicts.includes('PASS');
  if (reply.ok === true) {
    if (keys !== 'mac,ok,payload,ts') problems.push(`ok reply keys ${keys}`);
    const pingOk =
      pattern === 'system.ping' &&
      isObject(data) &&
      isObject(data.payload) &&
      Object.keys(data.payload).length === 0;
    if (!passed || !pingOk) problems.push('accepted a message it must refuse');
  } else if (reply.ok === false) {
    if (keys !== 'error,mac,ok,ts') problems.push(`error reply keys ${keys}`);
    const error = reply.error;
    if (!isObject(error) || typeof error.message !== 'string')
      return [...problems, 'error without a message'];
    const code = String(error.code);
    if (!ERROR_CODES.has(code)) problems.push(`unknown code ${code}`);
    if (passed) {
      if (
        GUARD_CODES.has(code) &&
        !expectation.verdicts.includes(code as Verdict)
      )
        problems.push(`guard refused a message it must pass: ${code}`);
      if (code === 'INTERNAL') problems.push('INTERNAL after the guard');
    } else if (!expectation.verdicts.includes(code as Verdict)) {
      problems.push(
        `code ${code}, expected ${expectation.verdicts.join(' or ')}`,
      );
    }
    const extras = Object.keys(error)
      .filter((key) => key !== 'code' && key !== 'message')
      .sort()
      .join(',');
    const allowedExtras: Record<string, string> = {
      BAD_REQUEST: 'fields',
      STALE: 'serverTime',
      RATE_LIMITED: 'retryAfterMs',
      INTERNAL: 'errorId',
    };
    if (extras !== (allowedExtras[code] ?? ''))
      problems.push(`${code} with extra fields [${extras}]`);
    if (code === 'BAD_REQUEST') {
      const fields = error.fields;
      if (
        !Array.isArray(fields) ||
        fields.length === 0 ||
        !fields.every(
          (field) =>
            isObject(field) &&
            typeof field.field === 'string' &&
            typeof field.problem === 'string',
        )
      )
        problems.push('BAD_REQUEST without a list of { field, problem }');
    }
    if (code === 'STALE' && typeof error.serverTime !== 'number')
      problems.push('STALE without serverTime');
  } else {
    problems.push('reply without a boolean ok');
  }
  // Signed if and only if the request's MAC verified: a code of checks 1-3 is always unsigned
  // (with a loose ts the service may refuse the form before it gets to the MAC).
  const code = isObject(reply.error) ? String(reply.error.code) : undefined;
  const binding =
    !passed && code !== undefined && UNSIGNED_CODES.has(code)
      ? null
      : expectation.binding;
  if (binding === null) {
    if (reply.mac !== null) problems.push('reply signed although it cannot be');
    problems.push(...unsignedErrorProblems(reply.error));
  } else if (!replyVerifies(reply, pattern, binding, binding.key)) {
    problems.push('reply MAC does not verify');
  }
  return problems;
}

// ---------------------------------------------------------------------------------------------
// Generators

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
  // JSON allows them, RFC 8785 does not: such a payload cannot be signed. Rare, because each
  // one is an error with a stack trace in the log while the lone-surrogate bug is open.
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

// ---------------------------------------------------------------------------------------------
// Frames

/** What a conforming service must make of a byte stream (PROTOCOL.md 1, Nest's framing). */
export interface FrameVerdict {
  /** Requests it must deliver, in order, before anything else. */
  messages: Record<string, unknown>[];
  /** The stream breaks the framing: the connection must be closed. */
  broken: boolean;
  /** The spec does not say whether the stream is broken (either outcome is right). */
  open: boolean;
  /** Ids of requests whose pattern is not a string: answered by an unsigned BAD_REQUEST. */
  refusedIds: (string | number)[];
}

/**
 * An independent reading of the framing: `<length>#<json>`, the length a decimal count of UTF-16
 * code units at most `max`, the JSON an object. One whose pattern is not a string is not delivered:
 * a request (a string or number id) gets an unsigned BAD_REQUEST, an event is dropped, and any
 * other id breaks the framing.
 */
export function readFrames(text: string, max: number): FrameVerdict {
  const messages: Record<string, unknown>[] = [];
  const refusedIds: (string | number)[] = [];
  // A length with a leading zero ("026") is not defined by the spec: closing there is as right
  // as reading it as 26. From there on, only a prefix of what a lenient reading finds is required.
  let lenient = false;
  const verdict = (broken: boolean, open = false): FrameVerdict => ({
    messages,
    broken,
    open: open || lenient,
    refusedIds,
  });
  let i = 0;
  while (i < text.length) {
    const hash = text.indexOf('#', i);
    const header = hash < 0 ? text.slice(i) : text.slice(i, hash);
    if (!/^[0-9]*$/.test(header)) return verdict(true);
    if (hash < 0) {
      // A partial header: broken already if it cannot end as a length within the limit.
      const tooLong =
        header.length > String(max).length && !header.startsWith('0');
      return verdict(tooLong, tooLong);
    }
    if (header === '') return verdict(true);
    if (header.length > 1 && header.startsWith('0')) lenient = true;
    const length = Number(header);
    if (length > max) return verdict(true);
    const start = hash + 1;
    if (text.length < start + length) return verdict(false);
    let message: unknown;
    try {
      message = JSON.parse(text.slice(start, start + length));
    } catch {
      return verdict(true);
    }
    if (!isObject(message)) return verdict(true);
    if (typeof message.pattern === 'string') messages.push(message);
    else if (typeof message.id === 'string' || typeof message.id === 'number')
      refusedIds.push(message.id);
    else if (message.id !== undefined) return verdict(true);
    i = start + length;
  }
  return verdict(false);
}

const frame = (json: string) => `${json.length}#${json}`;

/** One piece of a hostile stream. */
const pieceArb: fc.Arbitrary<string> = fc.oneof(
  // Valid frames (events, so the server answers nothing) between the garbage.
  {
    weight: 3,
    arbitrary: fc
      .record({
        pattern: fc.string({ maxLength: 8 }),
        data: fc.jsonValue({ maxDepth: 2 }),
      })
      .map((message) => frame(JSON.stringify(message))),
  },
  // Random JSON as the whole message.
  {
    weight: 3,
    arbitrary: fc
      .jsonValue({ maxDepth: 3, stringUnit: 'binary' })
      .map((value) => frame(JSON.stringify(value) ?? '')),
  },
  // Bad length prefixes.
  {
    weight: 2,
    arbitrary: fc.oneof(
      fc.constantFrom(
        '#',
        '-1#',
        ' 1#',
        '1.5#',
        '1e3#',
        '0x10#',
        '+5#',
        'NaN#',
        '∞#',
        '١٢#',
      ),
      fc.integer({ min: 65_537, max: 2 ** 31 }).map((n) => `${n}#`),
      fc
        .string({ unit: 'binary', minLength: 1, maxLength: 8 })
        .map((s) => `${s}#`),
      fc.constantFrom(
        '0#',
        '00000000002#{}',
        '99999999999',
        '123456789012345678901234567890#',
      ),
    ),
  },
  // A JSON body with no length, or a frame with no '#'.
  {
    weight: 1,
    arbitrary: fc
      .jsonValue({ maxDepth: 2 })
      .map((value) => JSON.stringify(value) ?? 'null'),
  },
  // Lengths that do not match their bodies.
  {
    weight: 2,
    arbitrary: fc
      .tuple(
        fc.record({
          pattern: fc.string({ maxLength: 8 }),
          data: fc.jsonValue({ maxDepth: 2 }),
        }),
        fc.integer({ min: -5, max: 5 }),
      )
      .map(([message, delta]) => {
        const json = JSON.stringify(message);
        return `${Math.max(0, json.length + delta)}#${json}`;
      }),
  },
  // Binary noise, and text noise.
  {
    weight: 2,
    arbitrary: fc.string({ unit: 'binary', minLength: 1, maxLength: 64 }),
  },
  {
    weight: 1,
    arbitrary: fc
      .uint8Array({ minLength: 1, maxLength: 64 })
      .map((bytes) => Buffer.from(bytes).toString('latin1')),
  },
);

export interface HostileStream {
  /** The bytes, split where they are to be written (or delivered) separately. */
  chunks: Buffer[];
  text: string;
}

/** A few pieces, encoded as UTF-8 (or raw bytes) and split at random byte offsets. */
export const streamArb: fc.Arbitrary<HostileStream> = fc
  .tuple(
    fc.array(pieceArb, { minLength: 1, maxLength: 4 }),
    fc.boolean(),
    fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 5 }),
  )
  .map(([pieces, rawBytes, cuts]) => {
    const joined = pieces.join('');
    // Raw bytes may be invalid UTF-8; the service then reads U+FFFD as any decoder would.
    const bytes = rawBytes
      ? Buffer.from(joined, 'latin1')
      : Buffer.from(joined, 'utf8');
    const offsets = [
      ...new Set(cuts.map((cut) => Math.floor(cut * bytes.length))),
    ]
      .filter((offset) => offset > 0 && offset < bytes.length)
      .sort((a, b) => a - b);
    const chunks: Buffer[] = [];
    let from = 0;
    for (const offset of [...offsets, bytes.length]) {
      chunks.push(bytes.subarray(from, offset));
      from = offset;
    }
    // The text a UTF-8 reader has seen once every chunk has arrived: a sequence cut short at the
    // end is still pending, not yet a replacement character.
    const decoder = new StringDecoder('utf8');
    return {
      chunks,
      text: chunks.map((chunk) => decoder.write(chunk)).join(''),
    };
  });

// ---------------------------------------------------------------------------------------------
// Sending

/**
 * Sends many requests over a few long-lived connections, `window` in flight on each, as a busy
 * client would pipeline them. Resolves each request with its reply.
 */
export class Pipeline {
  private constructor(
    private readonly clients: RawClient[],
    private readonly window: number,
  ) {}

  static async open(port: number, connections = 4, window = 64) {
    const clients = await Promise.all(
      Array.from({ length: connections }, () => RawClient.connect(port)),
    );
    return new Pipeline(clients, window);
  }

  /** Runs `send` for every item, spread over the connections, at most `window` at once on each. */
  async run<T>(
    items: T[],
    send: (client: RawClient, item: T) => Promise<void>,
  ): Promise<void> {
    let next = 0;
    await Promise.all(
      this.clients.map(async (client) => {
        const inflight = new Set<Promise<void>>();
        while (next < items.length) {
          const item = items[next++];
          const done: Promise<void> = send(client, item).finally(() =>
            inflight.delete(done),
          );
          inflight.add(done);
          if (inflight.size >= this.window) await Promise.race(inflight);
        }
        await Promise.all(inflight);
      }),
    );
  }

  /** Sends an event: a frame with no `id`, to which nothing is answered. */
  static event(client: RawClient, pattern: string, data: unknown): void {
    client.writeFrame({ pattern, data });
  }

  close(): void {
    for (const client of this.clients) client.close();
  }
}

/** A raw connection that records every reply frame and whether the server closed it. */
export class GarbageConnection {
  readonly replies: Record<string, unknown>[] = [];
  readonly replyErrors: string[] = [];
  private buffer = '';
  closedByServer = false;
  readonly closed: Promise<void>;

  private constructor(readonly socket: Socket) {
    socket.setEncoding('utf8');
    socket.setNoDelay(true);
    socket.on('error', () => undefined);
    socket.on('data', (chunk: string) => this.onData(chunk));
    socket.on('end', () => (this.closedByServer = true));
    this.closed = once(socket, 'close').then(() => undefined);
  }

  static async open(port: number): Promise<GarbageConnection> {
    const socket = connect(port, '127.0.0.1');
    await once(socket, 'connect');
    return new GarbageConnection(socket);
  }

  private onData(chunk: string): void {
    this.buffer += chunk;
    for (;;) {
      const hash = this.buffer.indexOf('#');
      if (hash < 0) return;
      const length = Number(this.buffer.slice(0, hash));
      if (!Number.isInteger(length)) {
        this.replyErrors.push('server sent a corrupt frame length');
        this.buffer = '';
        return;
      }
      if (this.buffer.length < hash + 1 + length) return;
      const body = this.buffer.slice(hash + 1, hash + 1 + length);
      this.buffer = this.buffer.slice(hash + 1 + length);
      try {
        this.replies.push(JSON.parse(body) as Record<string, unknown>);
      } catch {
        this.replyErrors.push('server sent invalid JSON');
      }
    }
  }
}

/**
 * The (kid, nonce) pairs in the `nonces_usados` table, or null when the record is not kept there
 * (no such table, or an empty one on SQLite where the record may live in memory): the suites then
 * judge the record by behaviour alone.
 */
export async function tableNonces(
  dataSource: DataSource,
  databaseKind: string,
): Promise<{ kid: string; nonce: string }[] | null> {
  let rows: { kid: string; nonce: string }[];
  try {
    rows = await dataSource.query('SELECT kid, nonce FROM nonces_usados');
  } catch {
    return null;
  }
  return rows.length > 0 || databaseKind === 'mysql' ? rows : null;
}

export { isObject };
