import { Inject, Injectable } from '@nestjs/common';
import * as bcrypt from 'bcrypt';
import { createHmac } from 'node:crypto';
import { APP_CONFIG, type AppConfig } from '../config/config';

const BCRYPT_HASH = /^\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}$/;

/** The cost a bcrypt hash was made with; undefined for anything that is not a bcrypt hash. */
export function bcryptCostOf(hash: string): number | undefined {
  const match = BCRYPT_HASH.exec(hash);
  return match ? Number(match[1]) : undefined;
}

/**
 * bcrypt over base64(HMAC-SHA-384(pepper, password)). bcrypt reads only 72 bytes and stops at a
 * NUL; the HMAC's 64 base64 characters carry every character of the password and contain no NUL.
 * The pepper lives outside the database, so a stolen table alone cannot be attacked offline.
 *
 * Every refused password costs the same, whoever the user is and whatever cost their stored hash
 * was made with: the time of a refusal must not tell which usernames exist. After PAI_BCRYPT_COST
 * changes, most stored hashes keep the old cost until their users log in again, so an unknown
 * user's check cannot simply match "a typical stored hash" (the population is mixed, and any
 * user outside its majority would stand out). Instead every refusal pays for one bcrypt at the
 * refusal cost: the highest of the configured cost and the cost of any stored hash. An unknown
 * user's check is one bcrypt at that cost; a stored hash of a lower cost is checked, then the
 * difference is spent on bcrypts of the costs in between (2^s + 2^s + 2^(s+1) + … + 2^(c-1) =
 * 2^c, bcrypt's time being proportional to 2^cost). A success pays only its own check (and the
 * re-hash to the configured cost, see AuthService.login): the right password reveals nothing.
 */
@Injectable()
export class PasswordHasher {
  private refusalCost: number;

  constructor(@Inject(APP_CONFIG) private readonly config: AppConfig) {
    this.refusalCost = config.bcryptCost;
  }

  hash(password: string): Promise<string> {
    return bcrypt.hash(this.prehash(password), this.config.bcryptCost);
  }

  /** Whether a stored hash is of another cost than the configured one, to be replaced at login. */
  needsRehash(storedHash: string): boolean {
    return bcryptCostOf(storedHash) !== this.config.bcryptCost;
  }

  /**
   * Stored hashes of this cost exist (read at start, once PAI_BCRYPT_COST has been lowered):
   * refusals cost at least this much, so that unknown users take as long as those users.
   */
  expectStoredCost(cost: number): void {
    if (cost > this.refusalCost) this.refusalCost = cost;
  }

  /**
   * With no stored hash (unknown user), the password is refused after one bcrypt of the refusal
   * cost: as long as the refusal of a wrong password for any user takes.
   */
  async verify(
    password: string,
    storedHash: string | undefined,
  ): Promise<boolean> {
    const prehash = this.prehash(password);
    const storedCost =
      storedHash === undefined ? undefined : bcryptCostOf(storedHash);
    if (storedHash === undefined || storedCost === undefined) {
      await this.spend(prehash, this.refusalCost);
      return false;
    }
    this.expectStoredCost(storedCost);
    if (await bcrypt.compare(prehash, storedHash)) return true;
    for (let cost = storedCost; cost < this.refusalCost; cost += 1) {
      await this.spend(prehash, cost);
    }
    return false;
  }

  private prehash(password: string): string {
    return createHmac('sha384', this.config.passwordPepper)
      .update(password, 'utf8')
      .digest('base64');
  }

  /**
   * One bcrypt of `cost`, thrown away: the same work as a compare against a hash of that cost
   * (a compare re-hashes with the stored salt). The salt is made synchronously so that this is
   * one task on the thread pool, as a compare is.
   */
  private async spend(prehash: string, cost: number): Promise<void> {
    await bcrypt.hash(prehash, bcrypt.genSaltSync(cost));
  }
}
