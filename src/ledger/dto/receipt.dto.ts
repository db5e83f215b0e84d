import { IsInt, Max, Min } from 'class-validator';
import { IsSessionToken } from '../../sessions/token.dto';
import { IsStringMatching, OptionalField } from '../../protocol/validation';

export class ReceiptDto {
  @IsSessionToken()
  token: string;

  @IsStringMatching(/^[1-9][0-9]{0,17}$/, 'must be a transaction id')
  id: string;

  /** The block of the digest the caller holds: the reply then carries the headers up to it. */
  @OptionalField()
  @IsInt({ message: 'must be a block number' })
  @Min(1, { message: 'must be a block number' })
  @Max(Number.MAX_SAFE_INTEGER, { message: 'must be a block number' })
  digestBlock?: number;
}
