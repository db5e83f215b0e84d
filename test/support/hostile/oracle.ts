/**
 * The oracle the hostile-traffic suites (fuzz, heap) judge replies by: it predicts, from
 * PROTOCOL.md alone, how the guard must answer any message, and checks a reply against that. It
 * imports none of the service's protocol code: the checks and the MACs are written again from the
 * spec (RFC 8785 aside), so the suites test the contract rather than agreement between two copies
 * of one implementation.
 */
import canonicalize from 'canonicalize';
import { createHmac } from 'node:crypto';
import { replyVerifies, type WireReply } from '../raw-client';
import { TEST_KEYS } from '../test-app';

export const WINDOW_MS = 300_000;

const KID = /^[A-Za-z0-9._-]{1,64}$/;
const NONCE = /^[A-Za-z0-9_-]{16,128}$/;
const MAC = /^[0-9a-f]{64}$/;
export const ENVELOPE_FIELDS = ['v', 'kid', 'ts', 'nonce', 'payload', 'mac'];

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
  'NOT_FOUND',
  'NOT_SEALED',
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

export const isObject = (value: unknown): value is Record<string, unknown> =>
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
