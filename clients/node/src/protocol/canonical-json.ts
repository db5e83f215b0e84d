import canonicalize from 'canonicalize';

/**
 * The value is not I-JSON (RFC 7493), so RFC 8785 gives it no canonical form: a lone surrogate in
 * a string or a key, or a number JSON.parse turned into Infinity (1e400).
 */
export class NotCanonicalizableError extends Error {
  constructor(reason: string) {
    super(reason);
    this.name = 'NotCanonicalizableError';
  }
}

/**
 * RFC 8785 (JCS) form of a JSON value. Only values that came out of JSON.parse or that the
 * service built itself reach here, so `undefined` cannot appear.
 */
export function canonicalJson(value: unknown): string {
  let text: string | undefined;
  try {
    text = canonicalize(value);
  } catch (error) {
    // canonicalize throws plain Errors for exactly these cases: "Lone surrogate is not
    // allowed", "Infinity is not allowed", "NaN is not allowed".
    throw new NotCanonicalizableError((error as Error).message);
  }
  if (text === undefined) {
    throw new NotCanonicalizableError('value has no JSON form');
  }
  return text;
}
