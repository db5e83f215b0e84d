import { Injectable, Logger, OnModuleInit } from '@nestjs/common';
import { Database } from '../database/database.service';
import { ErrorCode } from '@pai/client/protocol/error-code';
import { ProtocolError } from '../protocol/protocol-error';
import { usernameKey } from '../users/user.entity';
import { UsersService } from '../users/users.service';
import { CredentialsDto } from './dto/credentials.dto';
import { LoginThrottleService } from './login-throttle.service';
import { PasswordHasher } from './password-hasher';
import { SessionsService } from '../sessions/sessions.service';

@Injectable()
export class AuthService implements OnModuleInit {
  private readonly logger = new Logger(AuthService.name);

  constructor(
    private readonly database: Database,
    private readonly users: UsersService,
    private readonly hasher: PasswordHasher,
    private readonly throttle: LoginThrottleService,
    private readonly sessions: SessionsService,
  ) {}

  /**
   * Hashes of a higher cost than the configured one remain after PAI_BCRYPT_COST was lowered:
   * refusals are made to cost as much from the first request on (see PasswordHasher).
   */
  async onModuleInit(): Promise<void> {
    try {
      const cost = await this.users.highestPasswordCost();
      if (cost !== undefined) this.hasher.expectStoredCost(cost);
    } catch {
      // Not fatal: each stored hash checked at login raises the refusal cost too.
      this.logger.warn(
        "could not read the stored password hashes' cost; refusals start at PAI_BCRYPT_COST",
      );
    }
  }

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
    if (!user || !valid) throw new ProtocolError(ErrorCode.INVALID_CREDENTIALS);

    // A hash of another cost than the configured one (PAI_BCRYPT_COST changed) is replaced while
    // the password is at hand; hashed before the transaction, so the slow part holds no lock.
    const rehashed = this.hasher.needsRehash(user.passwordHash)
      ? await this.hasher.hash(password)
      : undefined;
    const session = await this.database.transaction(async (manager) => {
      await this.throttle.reset(manager, key);
      if (rehashed) {
        await this.users.replacePasswordHash(
          manager,
          user.id,
          user.passwordHash,
          rehashed,
        );
      }
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
