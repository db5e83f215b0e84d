import canonicalize from 'canonicalize';

/**
 * RFC 8785 (JCS) form of a JSON value. Only values that came out of JSON.parse or that the
 * service built itself reach here, so `undefined` cannot appear.
 */
export function canonicalJson(value: unknown): string {
  const text = canonicalize(value);
  if (text === undefined) {
    throw new TypeError('value has no JSON form');
  }
  return text;
}
