import {
  Inject,
  Injectable,
  Logger,
  OnModuleDestroy,
  OnModuleInit,
} from '@nestjs/common';
import { APP_CONFIG, type AppConfig } from '../config/config';
import { isUniqueViolation } from '../database/database-errors';
import { Database } from '../database/database.service';
import { startPeriodicTask } from '../database/periodic-task';
import { UsedNonce } from './used-nonce.entity';
import { Clock } from './clock';
import { ErrorCode } from './error-code';
import { PaiError } from './pai.error';

/**
 * The record of accepted (kid, nonce) pairs. It lives in the database, so a replay is refused
 * after a restart and by every instance that shares the database; the primary key makes the
 * refusal atomic, so of N copies sent at once exactly one is accepted.
 */
@Injectable()
export class NonceStore implements OnModuleInit, OnModuleDestroy {
  private readonly logger = new Logger(NonceStore.name);
  private stopPurge?: () => void;

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly database: Database,
    private readonly clock: Clock,
  ) {}

  /** Records the pair, valid until `ts` plus the window; throws REPLAY if it was recorded before. */
  async consume(kid: string, nonce: string, ts: number): Promise<void> {
    const expiresAt = ts + this.config.macWindowMs;
    try {
      await this.database.run((manager) =>
        manager.insert(UsedNonce, { kid, nonce, expiresAt: String(expiresAt) }),
      );
    } catch (error) {
      if (isUniqueViolation(error)) throw new PaiError(ErrorCode.REPLAY);
      throw error;
    }
  }

  /** Forgets every pair whose message can no longer pass the freshness check anyway. */
  async purgeExpired(): Promise<number> {
    const result = await this.database.run((manager) =>
      manager
        .createQueryBuilder()
        .delete()
        .from(UsedNonce)
        .where('expira_en < :now', { now: this.clock.now() })
        .execute(),
    );
    return result.affected ?? 0;
  }

  onModuleInit(): void {
    // A tenth of the window keeps the record within 110% of what the window needs.
    const every = Math.min(
      Math.max(Math.floor(this.config.macWindowMs / 10), 1_000),
      30_000,
    );
    this.stopPurge = startPeriodicTask(
      'nonce purge',
      every,
      () => this.purgeExpired(),
      this.logger,
    );
  }

  onModuleDestroy(): void {
    this.stopPurge?.();
  }
}
