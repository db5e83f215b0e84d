import { AMOUNT_PATTERN } from '@pai/client/protocol/limits';

/*
 * Money as integer cents in a bigint: amounts never pass through binary floating point, on the
 * wire, in the code or in either database.
 */
const DATABASE_DECIMAL = /^(-?)([0-9]+)(?:\.([0-9]{1,2}))?$/;

/** Cents of a wire amount; the caller has checked it against AMOUNT_PATTERN. */
export function parseAmount(text: string): bigint {
  if (!AMOUNT_PATTERN.test(text)) {
    throw new RangeError(`not an amount: ${JSON.stringify(text)}`);
  }
  return decimalToCents(text);
}

function decimalToCents(text: string): bigint {
  const match = DATABASE_DECIMAL.exec(text);
  if (!match) throw new RangeError(`not a decimal: ${JSON.stringify(text)}`);
  const [, sign, units, fraction = ''] = match;
  const cents = BigInt(units) * 100n + BigInt(fraction.padEnd(2, '0'));
  return sign === '-' ? -cents : cents;
}

/** The wire form: always exactly two decimals ("12.50", "0.30", "7.00"). */
export function formatCents(cents: bigint): string {
  const sign = cents < 0n ? '-' : '';
  const magnitude = cents < 0n ? -cents : cents;
  const units = magnitude / 100n;
  const fraction = (magnitude % 100n).toString().padStart(2, '0');
  return `${sign}${units}.${fraction}`;
}

/** The canonical two-decimal form of any amount the service accepted. */
export function normalizeAmount(text: string): string {
  return formatCents(parseAmount(text));
}

/**
 * A stored amount as read back: MySQL's DECIMAL arrives as a string ("12.50"), SQLite's TEXT as
 * the string we stored. A number would mean a float got in somewhere: refuse it loudly.
 */
export function fromDatabaseAmount(value: unknown): string {
  if (typeof value !== 'string') {
    throw new TypeError(
      `amount read from the database as ${typeof value}, expected a string`,
    );
  }
  return formatCents(decimalToCents(value));
}

/** Cents from an exact integer string (SQLite's summed cents), or a decimal string (MySQL's SUM). */
export function centsFromDatabaseTotal(
  value: unknown,
  unit: 'cents' | 'decimal',
): bigint {
  if (value === null || value === undefined) return 0n;
  if (typeof value !== 'string') {
    throw new TypeError(
      `total read from the database as ${typeof value}, expected a string`,
    );
  }
  if (unit === 'cents') {
    if (!/^-?[0-9]+$/.test(value))
      throw new RangeError(`not an integer: ${JSON.stringify(value)}`);
    return BigInt(value);
  }
  return decimalToCents(value);
}
