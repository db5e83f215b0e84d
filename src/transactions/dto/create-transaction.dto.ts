import { ValidateBy } from 'class-validator';
import { IsSessionToken } from '../../sessions/token.dto';
import {
  IsStringMatching,
  IsText,
  OptionalField,
} from '../../protocol/validation';
import {
  AMOUNT_RULE,
  DESCRIPTION_MAX_LENGTH,
  REFERENCE_PATTERN,
  REFERENCE_RULE,
  isPositiveAmount,
} from '@pai/client/protocol/limits';

const IsPositiveAmount = (): PropertyDecorator =>
  ValidateBy({
    name: 'isPositiveAmount',
    validator: {
      validate: (value: unknown) =>
        typeof value === 'string' && isPositiveAmount(value),
      defaultMessage: () => `must be ${AMOUNT_RULE}`,
    },
  });

export class CreateTransactionDto {
  @IsSessionToken()
  token: string;

  @IsPositiveAmount()
  amount: string;

  @OptionalField()
  @IsStringMatching(REFERENCE_PATTERN, `must be ${REFERENCE_RULE}`)
  reference?: string;

  @OptionalField()
  @IsText(0, DESCRIPTION_MAX_LENGTH)
  description?: string;
}
