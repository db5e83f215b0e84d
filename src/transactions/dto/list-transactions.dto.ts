import { IsInt, Max, Min } from 'class-validator';
import { IsSessionToken } from '../../sessions/token.dto';
import { IsStringMatching, OptionalField } from '../../protocol/validation';

export const DEFAULT_PAGE_SIZE = 20;

export class ListTransactionsDto {
  @IsSessionToken()
  token: string;

  @OptionalField()
  @IsInt({ message: 'must be an integer from 1 to 100' })
  @Min(1, { message: 'must be an integer from 1 to 100' })
  @Max(100, { message: 'must be an integer from 1 to 100' })
  limit?: number;

  @OptionalField()
  @IsStringMatching(
    /^[1-9][0-9]{0,17}$/,
    'must be a transaction id from an earlier page',
  )
  before?: string;
}
