import type { Envelope } from './envelope';
import { createHmac, randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { itIf } from '../../../../test/support/skip';
import { hmacHex, macMatches, replyMacInput, requestMacInput } from './mac';

interface RequestVector {
  pattern: string;
  envelope: Envelope;
  macInput: string;
}

interface ReplyVector {
  pattern: string;
  kid: string;
  requestNonce: string;
  requestMac: string;
  reply: { mac: string } & Record<string, unknown>;
  macInput: string;
}

interface ProtocolVectors {
  keys: Record<string, string>;
  requests: RequestVector[];
  replies: ReplyVector[];
}

// The normative vectors live beside PROTOCOL.md; the vendored copy keeps the suite runnable where
// only this project is checked out, and is compared byte for byte whenever the original is present.
const SHARED_VECTORS = resolve(
  __dirname,
  '../../../../../shared/protocol-vectors.json',
);
const VENDORED_VECTORS = resolve(
  __dirname,
  '../../../../test/fixtures/protocol-vectors.json',
);
const sharedPresent = existsSync(SHARED_VECTORS);
const vectors = JSON.parse(
  readFileSync(sharedPresent ? SHARED_VECTORS : VENDORED_VECTORS, 'utf8'),
) as ProtocolVectors;

function keyOf(kid: string): Buffer {
  const base64 = vectors.keys[kid];
  if (base64 === undefined) throw new Error(`no key "${kid}" in the vectors`);
  return Buffer.from(base64, 'base64');
}

function withoutMac(reply: ReplyVector['reply']): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries(reply).filter(([field]) => field !== 'mac'),
  );
}

const requestCases = vectors.requests.map(
  (vector, index) =>
    [index, vector.pattern, vector.envelope.kid, vector] as const,
);
const replyCases = vectors.replies.map(
  (vector, index) => [index, vector.pattern, vector.kid, vector] as const,
);

describe('protocol-vectors.json', () => {
  itIf(
    sharedPresent,
    'needs ../shared/protocol-vectors.json beside the project',
  )('should vendor a byte-identical copy of the shared vectors', () => {
    expect(
      readFileSync(VENDORED_VECTORS).equals(readFileSync(SHARED_VECTORS)),
    ).toBe(true);
  });

  it('should hold request and reply vectors', () => {
    expect(vectors.requests.length).toBeGreaterThan(0);
    expect(vectors.replies.length).toBeGreaterThan(0);
  });
});

describe(requestMacInput.name, () => {
  it.each(requestCases)(
    'should reproduce request vector %i (%s, kid %s)',
    (_index, _pattern, _kid, vector) => {
      const input = requestMacInput(vector.pattern, vector.envelope);

      expect(input).toBe(vector.macInput);
      expect(hmacHex(keyOf(vector.envelope.kid), input)).toBe(
        vector.envelope.mac,
      );
    },
  );

  it('should bind the pattern into the MAC', () => {
    const [vector] = vectors.requests;
    const key = keyOf(vector.envelope.kid);

    expect(
      hmacHex(key, requestMacInput('auth.logout', vector.envelope)),
    ).not.toBe(vector.envelope.mac);
  });
});

describe(replyMacInput.name, () => {
  it.each(replyCases)(
    'should reproduce reply vector %i (%s, kid %s)',
    (_index, _pattern, _kid, vector) => {
      const input = replyMacInput(
        {
          pattern: vector.pattern,
          kid: vector.kid,
          nonce: vector.requestNonce,
          mac: vector.requestMac,
        },
        withoutMac(vector.reply),
      );

      expect(input).toBe(vector.macInput);
      expect(hmacHex(keyOf(vector.kid), input)).toBe(vector.reply.mac);
    },
  );

  it("should bind the request's own MAC, so a tampered copy's reply does not fit the original", () => {
    const [vector] = vectors.replies;
    const request = {
      pattern: vector.pattern,
      kid: vector.kid,
      nonce: vector.requestNonce,
      mac: vector.requestMac,
    };
    const tampered = {
      ...request,
      mac: (request.mac[0] === '0' ? '1' : '0') + request.mac.slice(1),
    };
    const key = keyOf(vector.kid);

    expect(
      hmacHex(key, replyMacInput(tampered, withoutMac(vector.reply))),
    ).not.toBe(vector.reply.mac);
    expect(hmacHex(key, replyMacInput(request, withoutMac(vector.reply)))).toBe(
      vector.reply.mac,
    );
  });
});

describe(macMatches.name, () => {
  const expected = vectors.requests[0].envelope.mac;

  function flipDigit(hex: string, at: number): string {
    const flipped = hex[at] === '0' ? '1' : '0';
    return hex.slice(0, at) + flipped + hex.slice(at + 1);
  }

  it('should accept the right MAC', () => {
    expect(macMatches(expected, expected)).toBe(true);
  });

  it('should refuse a MAC of the wrong length', () => {
    expect(macMatches(expected, expected.slice(0, 63))).toBe(false);
    expect(macMatches(expected, `${expected}00`)).toBe(false);
    expect(macMatches(expected, '')).toBe(false);
  });

  it('should refuse the right MAC in uppercase hex', () => {
    expect(macMatches(expected, expected.toUpperCase())).toBe(false);
  });

  it.each([
    ['a number', 42],
    ['null', null],
    ['undefined', undefined],
    ['an array', [expected]],
    ['a buffer', Buffer.from(expected, 'hex')],
    ['an object', { toString: () => expected }],
  ])('should refuse %s', (_what, provided) => {
    expect(macMatches(expected, provided)).toBe(false);
  });

  it.each([0, 31, 63])(
    'should refuse the right MAC with digit %i flipped',
    (at) => {
      expect(macMatches(expected, flipDigit(expected, at))).toBe(false);
    },
  );
});

describe(hmacHex.name, () => {
  it.each([1, 32, 63, 64, 65, 100])(
    'should equal HMAC-SHA256 from node:crypto for a %i-byte key',
    (keyBytes) => {
      const key = randomBytes(keyBytes);
      for (const input of [
        '',
        'PAI-MAC-V2\nx',
        'é€😀\n{"a":1}',
        'x'.repeat(5000),
      ]) {
        expect(hmacHex(key, input)).toBe(
          createHmac('sha256', key).update(input, 'utf8').digest('hex'),
        );
      }
    },
  );

  it('should keep keys apart when called in turn', () => {
    const first = randomBytes(32);
    const second = randomBytes(32);
    const expected = (key: Buffer) =>
      createHmac('sha256', key).update('same input').digest('hex');
    expect(hmacHex(first, 'same input')).toBe(expected(first));
    expect(hmacHex(second, 'same input')).toBe(expected(second));
    expect(hmacHex(first, 'same input')).toBe(expected(first));
  });
});
