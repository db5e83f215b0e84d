import { createHmac, timingSafeEqual } from 'node:crypto';
import { canonicalJson } from './canonical-json';

export const REQUEST_MAC_PREFIX = 'PAI-MAC-V1';
export const REPLY_MAC_PREFIX = 'PAI-MAC-V1-REPLY';
export const MAC_HEX_PATTERN = /^[0-9a-f]{64}$/;

export interface SignedFields {
  kid: string;
  ts: number;
  nonce: string;
  payload: Record<string, unknown>;
}

/** S = "PAI-MAC-V1" LF pattern LF kid LF ts LF nonce LF JCS(payload) */
export function requestMacInput(pattern: string, fields: SignedFields): string {
  return [
    REQUEST_MAC_PREFIX,
    pattern,
    fields.kid,
    String(fields.ts),
    fields.nonce,
    canonicalJson(fields.payload),
  ].join('\n');
}

/** R = "PAI-MAC-V1-REPLY" LF pattern LF kid LF nonce LF JCS(reply without "mac") */
export function replyMacInput(
  pattern: string,
  kid: string,
  nonce: string,
  replyWithoutMac: object,
): string {
  return [
    REPLY_MAC_PREFIX,
    pattern,
    kid,
    nonce,
    canonicalJson(replyWithoutMac),
  ].join('\n');
}

export function hmacHex(key: Buffer, input: string): string {
  return createHmac('sha256', key).update(input, 'utf8').digest('hex');
}

/** Constant-time comparison of two MACs; `provided` may be anything a peer sent. */
export function macMatches(expectedHex: string, provided: unknown): boolean {
  if (typeof provided !== 'string' || !MAC_HEX_PATTERN.test(provided)) {
    return false;
  }
  return timingSafeEqual(
    Buffer.from(expectedHex, 'hex'),
    Buffer.from(provided, 'hex'),
  );
}
