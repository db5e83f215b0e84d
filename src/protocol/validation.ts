import { ValidateBy, ValidateIf, ValidationOptions } from 'class-validator';

/**
 * Absent is allowed, null is not: class-validator's IsOptional would let `null` through, and a
 * JSON null is not a string of the protocol.
 */
export const OptionalField = (): PropertyDecorator =>
  ValidateIf((_object, value) => value !== undefined);

const CONTROL_CHARACTER = /\p{Cc}/u;

/** A string of min..max Unicode code points (not UTF-16 units) with no control characters. */
export function IsText(
  min: number,
  max: number,
  options?: ValidationOptions,
): PropertyDecorator {
  return ValidateBy(
    {
      name: 'isText',
      validator: {
        validate: (value: unknown) => {
          if (typeof value !== 'string') return false;
          const length = [...value].length;
          return (
            length >= min && length <= max && !CONTROL_CHARACTER.test(value)
          );
        },
        defaultMessage: () =>
          `must be a string of ${min}-${max} characters without control characters`,
      },
    },
    options,
  );
}

/** A string matching `pattern`; non-strings fail with the same message. */
export function IsStringMatching(
  pattern: RegExp,
  message: string,
): PropertyDecorator {
  return ValidateBy({
    name: 'isStringMatching',
    validator: {
      validate: (value: unknown) =>
        typeof value === 'string' && pattern.test(value),
      defaultMessage: () => message,
    },
  });
}
