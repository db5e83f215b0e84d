import { ValidateBy } from 'class-validator';
import { IsSessionToken } from '../../sessions/token.dto';
import {
  IsStringMatching,
  IsText,
  OptionalField,
} from '../../protocol/validation';
import { AMOUNT_PATTERN } from '../amount';

export const REFERENCE_PATTERN = /^[A-Za-z0-9._:-]{1,64}$/;

const IsPositiveAmount = (): PropertyDecorator =>
  ValidateBy({
    name: 'isPositiveAmount',
    validator: {
      validate: (value: unknown) =>
        typeof value === 'string' &&
        AMOUNT_PATTERN.test(value) &&
        /[1-9]/.test(value),
      defaultMessage: () =>
        'must be a decimal string greater than zero with at most 13 integer digits and 2 decimals, e.g. "12.50"',
    },
  });

export class CreateTransactionDto {
  @IsSessionToken()
  token: string;

  @IsPositiveAmount()
  amount: string;

  @OptionalField()
  @IsStringMatching(
    REFERENCE_PATTERN,
    'must be 1-64 characters of [A-Za-z0-9._:-]',
  )
  reference?: string;

  @OptionalField()
  @IsText(0, 140)
  description?: string;
}
