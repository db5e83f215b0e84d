import { Injectable } from '@nestjs/common';
import { EntityManager } from 'typeorm';
import { Database } from '../database/database.service';
import { Clock } from '../common/clock';
import { ErrorCode } from '@pai/client/protocol/error-code';
import { ProtocolError } from '../protocol/protocol-error';
import { LoginThrottle } from './login-throttle.entity';

export const FREE_FAILURES = 5;
const BASE_LOCK_MS = 1_000;
const MAX_LOCK_MS = 15 * 60_000;

/** How long logins stay refused after the n-th consecutive failure: 1 s, 2 s, 4 s … at most 15 min. */
export function lockDurationMs(failures: number): number {
  if (failures < FREE_FAILURES) return 0;
  return Math.min(
    BASE_LOCK_MS * 2 ** Math.min(failures - FREE_FAILURES, 30),
    MAX_LOCK_MS,
  );
}

/**
 * Counts failed logins per username. An attempt is counted as failed *before* its password is
 * checked and forgiven when it succeeds, so a burst of parallel guesses cannot all slip in
 * before the first failure is recorded: at most FREE_FAILURES of them reach bcrypt.
 */
@Injectable()
export class LoginThrottleService {
  constructor(
    private readonly database: Database,
    private readonly clock: Clock,
  ) {}

  /** Records an attempt, or throws RATE_LIMITED (with retryAfterMs) while the username is locked. */
  async reserveAttempt(usernameKey: string): Promise<void> {
    // A successful login of the same user (on this instance or another) may delete the row
    // between the insert and the count; the attempt is then counted on a new row. Twice in a row
    // would take two successes in that gap: a third pass is not expected, but bounded anyway.
    for (let pass = 1; ; pass += 1) {
      await this.database.run((manager) =>
        manager
          .createQueryBuilder()
          .insert()
          .into(LoginThrottle)
          .values({
            usernameKey,
            failures: 0,
            lockedUntil: null,
            updatedAt: String(this.clock.now()),
          })
          .orIgnore()
          .execute(),
      );
      const counted = await this.database.transaction((manager) =>
        this.count(manager, usernameKey),
      );
      if (counted || pass === 3) return;
    }
  }

  /** A successful login: the count starts again from zero. */
  async reset(manager: EntityManager, usernameKey: string): Promise<void> {
    await manager.delete(LoginThrottle, { usernameKey });
  }

  /** Counts the attempt; false when the row was gone (deleted by a concurrent success). */
  private async count(
    manager: EntityManager,
    usernameKey: string,
  ): Promise<boolean> {
    const now = this.clock.now();
    const counted = await manager
      .createQueryBuilder()
      .update(LoginThrottle)
      .set({ failures: () => 'fallos + 1', updatedAt: String(now) })
      .where('nombre_usuario_normalizado = :usernameKey', { usernameKey })
      .andWhere('(bloqueado_hasta IS NULL OR bloqueado_hasta <= :now)', { now })
      .execute();

    if (!counted.affected) {
      const row = await manager.findOneBy(LoginThrottle, { usernameKey });
      if (!row) return false;
      throw new ProtocolError(ErrorCode.RATE_LIMITED, {
        retryAfterMs: Math.max(Number(row.lockedUntil) - now, 1),
      });
    }

    // Our UPDATE holds the row's lock until commit, so this read is the count we just made.
    const row = await manager.findOneByOrFail(LoginThrottle, { usernameKey });
    const lockMs = lockDurationMs(row.failures);
    if (lockMs > 0) {
      await manager.update(
        LoginThrottle,
        { usernameKey },
        { lockedUntil: String(now + lockMs) },
      );
    }
    return true;
  }
}
