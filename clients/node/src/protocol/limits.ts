/*
 * The ranges the service's payload validation enforces, for the fields a client types in: the
 * service's DTOs and the `pai` command check against these same values.
 */

/** A wire amount: a decimal string, at most 13 integer digits and 2 decimals (greater than zero to pay). */
export const AMOUNT_PATTERN = /^(0|[1-9][0-9]{0,12})(\.[0-9]{1,2})?$/;
export const AMOUNT_RULE =
  'a decimal string greater than zero with at most 13 integer digits and 2 decimals, e.g. "12.50"';

/** A transaction's idempotency reference. */
export const REFERENCE_PATTERN = /^[A-Za-z0-9._:-]{1,64}$/;
export const REFERENCE_RULE = '1-64 characters of [A-Za-z0-9._:-]';

/** The longest description, in characters. */
export const DESCRIPTION_MAX_LENGTH = 140;

/** `transactions.list`'s page size. */
export const PAGE_LIMIT_MIN = 1;
export const PAGE_LIMIT_MAX = 100;

/** A transaction id, as `before` takes it. */
export const TRANSACTION_ID_PATTERN = /^[1-9][0-9]{0,17}$/;

/** Whether `amount` is a wire amount greater than zero. */
export function isPositiveAmount(amount: string): boolean {
  return AMOUNT_PATTERN.test(amount) && /[1-9]/.test(amount);
}
