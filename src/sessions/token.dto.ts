import { IsStringMatching } from '../protocol/validation';

/** A session token as the service issues it: base64url, at least 128 bits. */
export const TOKEN_PATTERN = /^[A-Za-z0-9_-]{22,256}$/;

export const IsSessionToken = (): PropertyDecorator =>
  IsStringMatching(TOKEN_PATTERN, 'must be a session token (base64url)');

/** auth.logout and users.me: `{ token }`. */
export class TokenDto {
  @IsSessionToken()
  token: string;
}
