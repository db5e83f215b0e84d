import { IsInt, Max, Min } from 'class-validator';
import { IsSessionToken } from '../../sessions/token.dto';
import { IsStringMatching, OptionalField } from '../../protocol/validation';
import {
  PAGE_LIMIT_MAX,
  PAGE_LIMIT_MIN,
  TRANSACTION_ID_PATTERN,
} from '@pai/client/protocol/limits';

const LIMIT_RULE = `must be an integer from ${PAGE_LIMIT_MIN} to ${PAGE_LIMIT_MAX}`;

export const DEFAULT_PAGE_SIZE = 20;

export class ListTransactionsDto {
  @IsSessionToken()
  token: string;

  @OptionalField()
  @IsInt({ message: LIMIT_RULE })
  @Min(PAGE_LIMIT_MIN, { message: LIMIT_RULE })
  @Max(PAGE_LIMIT_MAX, { message: LIMIT_RULE })
  limit?: number;

  @OptionalField()
  @IsStringMatching(
    TRANSACTION_ID_PATTERN,
    'must be a transaction id from an earlier page',
  )
  before?: string;
}
