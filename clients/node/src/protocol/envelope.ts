import { KID_PATTERN } from '../config/mac-keys';
import { FieldProblem } from './error-code';
import { MAC_HEX_PATTERN } from './mac';

export const PROTOCOL_VERSION = 2;
export const NONCE_PATTERN = /^[A-Za-z0-9_-]{16,128}$/;

/** The request envelope (docs/protocol.md 2) once its form has been checked. */
export interface Envelope {
  v: typeof PROTOCOL_VERSION;
  kid: string;
  ts: number;
  nonce: string;
  payload: Record<string, unknown>;
  mac: string;
}

const ENVELOPE_FIELDS = new Set(['v', 'kid', 'ts', 'nonce', 'payload', 'mac']);

export function isJsonObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Step 1 of the checks: the form of every envelope field. Returns the problems found, if any.
 * They go back unsigned, so each is a fixed text naming a field of the protocol's own: nothing
 * the peer wrote (an unexpected field's name, say) comes back in a reply nobody can authenticate.
 */
export function envelopeProblems(data: unknown): FieldProblem[] {
  if (!isJsonObject(data)) {
    return [{ field: 'data', problem: 'the envelope must be a JSON object' }];
  }
  const problems: FieldProblem[] = [];
  if (Object.keys(data).some((field) => !ENVELOPE_FIELDS.has(field))) {
    problems.push({ field: 'envelope', problem: 'unknown field' });
  }
  if (data.v !== PROTOCOL_VERSION) {
    problems.push({
      field: 'v',
      problem: `must be the integer ${PROTOCOL_VERSION}`,
    });
  }
  if (typeof data.kid !== 'string' || !KID_PATTERN.test(data.kid)) {
    problems.push({
      field: 'kid',
      problem: 'must be 1-64 characters of [A-Za-z0-9._-]',
    });
  }
  if (
    typeof data.ts !== 'number' ||
    !Number.isSafeInteger(data.ts) ||
    data.ts < 0
  ) {
    problems.push({
      field: 'ts',
      problem: 'must be a non-negative integer of milliseconds',
    });
  }
  if (typeof data.nonce !== 'string' || !NONCE_PATTERN.test(data.nonce)) {
    problems.push({
      field: 'nonce',
      problem: 'must be 16-128 characters of [A-Za-z0-9_-]',
    });
  }
  if (!isJsonObject(data.payload)) {
    problems.push({ field: 'payload', problem: 'must be a JSON object' });
  }
  if (typeof data.mac !== 'string' || !MAC_HEX_PATTERN.test(data.mac)) {
    problems.push({ field: 'mac', problem: 'must be 64 lowercase hex digits' });
  }
  return problems;
}
