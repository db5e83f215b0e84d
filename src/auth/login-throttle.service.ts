import { Injectable } from '@nestjs/common';
import { EntityManager } from 'typeorm';
import { isUniqueViolation } from '../database/database-errors';
import { Database } from '../database/database.service';
import { Clock } from '../protocol/clock';
import { ErrorCode } from '../protocol/error-code';
import { PaiError } from '../protocol/pai.error';
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
    try {
      await this.database.transaction((manager) =>
        this.reserve(manager, usernameKey),
      );
    } catch (error) {
      // Two first attempts raced to insert the row: the loser counts against the row it lost to.
      if (!isUniqueViolation(error)) throw error;
      await this.database.transaction((manager) =>
        this.reserve(manager, usernameKey),
      );
    }
  }

  /** A successful login: the count starts again from zero. */
  async reset(manager: EntityManager, usernameKey: string): Promise<void> {
    await manager.delete(LoginThrottle, { usernameKey });
  }

  private async reserve(
    manager: EntityManager,
    usernameKey: string,
  ): Promise<void> {
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
      if (row) {
        throw new PaiError(ErrorCode.RATE_LIMITED, {
          retryAfterMs: Math.max(Number(row.lockedUntil) - now, 1),
        });
      }
      await manager.insert(LoginThrottle, {
        usernameKey,
        failures: 1,
        lockedUntil: null,
        updatedAt: String(now),
      });
      return;
    }

    // The row is locked by our UPDATE until commit, so this read is the count we just made.
    const row = await manager.findOneByOrFail(LoginThrottle, { usernameKey });
    const lockMs = lockDurationMs(row.failures);
    if (lockMs > 0) {
      await manager.update(
        LoginThrottle,
        { usernameKey },
        { lockedUntil: String(now + lockMs) },
      );
    }
  }
}
