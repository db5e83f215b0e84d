import { Injectable } from '@nestjs/common';
import { Database } from '../database/database.service';
import { ErrorCode } from '../protocol/error-code';
import { PaiError } from '../protocol/pai.error';
import { usernameKey } from '../users/user.entity';
import { UsersService } from '../users/users.service';
import { CredentialsDto } from './dto/credentials.dto';
import { LoginThrottleService } from './login-throttle.service';
import { PasswordHasher } from './password-hasher';
import { SessionsService } from './sessions.service';

@Injectable()
export class AuthService {
  constructor(
    private readonly database: Database,
    private readonly users: UsersService,
    private readonly hasher: PasswordHasher,
    private readonly throttle: LoginThrottleService,
    private readonly sessions: SessionsService,
  ) {}

  async register({ username, password }: CredentialsDto) {
    // Hashed before the insert so the slow part holds no database lock; a lost race on the
    // unique index is USERNAME_TAKEN, so of N concurrent registrations of one name one wins.
    const passwordHash = await this.hasher.hash(password);
    const user = await this.users.create(username, passwordHash);
    return {
      userId: user.id,
      username: user.username,
      createdAt: user.createdAt.toISOString(),
    };
  }

  async login({ username, password }: CredentialsDto) {
    const key = usernameKey(username);
    await this.throttle.reserveAttempt(key);
    const user = await this.users.findByUsernameKey(key);
    const valid = await this.hasher.verify(password, user?.passwordHash);
    if (!user || !valid) throw new PaiError(ErrorCode.INVALID_CREDENTIALS);

    const session = await this.database.transaction(async (manager) => {
      await this.throttle.reset(manager, key);
      return this.sessions.issue(manager, String(user.id));
    });
    return {
      token: session.token,
      userId: String(user.id),
      expiresAt: session.expiresAt.toISOString(),
    };
  }

  async logout(token: string) {
    await this.sessions.revoke(token);
    return { revoked: true as const };
  }
}
