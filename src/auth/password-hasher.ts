import { Inject, Injectable } from '@nestjs/common';
import * as bcrypt from 'bcrypt';
import { createHmac, randomBytes } from 'node:crypto';
import { APP_CONFIG, type AppConfig } from '../config/config';

/**
 * bcrypt over base64(HMAC-SHA-384(pepper, password)). bcrypt reads only 72 bytes and stops at a
 * NUL; the HMAC's 64 base64 characters carry every character of the password and contain no NUL.
 * The pepper lives outside the database, so a stolen table alone cannot be attacked offline.
 */
@Injectable()
export class PasswordHasher {
  private dummyHash?: Promise<string>;

  constructor(@Inject(APP_CONFIG) private readonly config: AppConfig) {}

  hash(password: string): Promise<string> {
    return bcrypt.hash(this.prehash(password), this.config.bcryptCost);
  }

  /**
   * With no stored hash (unknown user) a dummy hash of the same cost is checked, so the answer
   * takes as long as for a real user and timing does not tell which usernames exist.
   */
  async verify(
    password: string,
    storedHash: string | undefined,
  ): Promise<boolean> {
    const hash = storedHash ?? (await this.dummy());
    const matches = await bcrypt.compare(this.prehash(password), hash);
    return matches && storedHash !== undefined;
  }

  private prehash(password: string): string {
    return createHmac('sha384', this.config.passwordPepper)
      .update(password, 'utf8')
      .digest('base64');
  }

  private dummy(): Promise<string> {
    if (!this.dummyHash) {
      this.dummyHash = bcrypt.hash(
        randomBytes(32).toString('base64'),
        this.config.bcryptCost,
      );
      // A failure is not remembered: the next unknown-user login tries again.
      this.dummyHash.catch(() => (this.dummyHash = undefined));
    }
    return this.dummyHash;
  }
}
