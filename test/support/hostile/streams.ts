/**
 * Generators of garbage byte streams for the framing: valid frames, random JSON, bad length
 * prefixes, lengths that lie, binary noise, split at random byte offsets. framing.ts says what a
 * conforming service must make of each.
 */
import fc from 'fast-check';
import { StringDecoder } from 'node:string_decoder';

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
