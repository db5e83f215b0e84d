import { IsStringMatching, IsText } from '../../protocol/validation';

export const USERNAME_PATTERN = /^[A-Za-z0-9._-]{3,32}$/;

/** auth.register and auth.login: `{ username, password }`. */
export class CredentialsDto {
  @IsStringMatching(
    USERNAME_PATTERN,
    'must be 3-32 characters of [A-Za-z0-9._-]',
  )
  username: string;

  // Code points, not bytes: every one of up to 128 characters counts (see PasswordHasher).
  @IsText(8, 128)
  password: string;
}
