import {
  Inject,
  Injectable,
  Logger,
  OnModuleDestroy,
  OnModuleInit,
} from '@nestjs/common';
import { createHash, randomBytes } from 'node:crypto';
import { EntityManager, IsNull, LessThan } from 'typeorm';
import { APP_CONFIG, type AppConfig } from '../config/config';
import { Database } from '../database/database.service';
import { startPeriodicTask } from '../common/periodic-task';
import { Clock } from '../common/clock';
import { ErrorCode } from '@pai/client/protocol/error-code';
import { ProtocolError } from '../protocol/protocol-error';
import { Session } from './session.entity';

export interface IssuedSession {
  token: string;
  expiresAt: Date;
}

/** Only the hash of a token is stored: a token is 256 random bits, so a fast hash is enough. */
export function tokenHash(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

const PURGE_EVERY_MS = 10 * 60_000;

@Injectable()
export class SessionsService implements OnModuleInit, OnModuleDestroy {
  private readonly logger = new Logger(SessionsService.name);
  private stopPurge?: () => void;

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly database: Database,
    private readonly clock: Clock,
  ) {}

  async issue(manager: EntityManager, userId: string): Promise<IssuedSession> {
    const token = randomBytes(32).toString('base64url');
    const now = this.clock.now();
    const expiresAt = new Date(now + this.config.sessionTtlMs);
    await manager.insert(Session, {
      userId,
      tokenHash: tokenHash(token),
      createdAt: new Date(now),
      expiresAt,
      revokedAt: null,
    });
    return { token, expiresAt };
  }

  /** The user a live session belongs to; UNAUTHENTICATED if the token is unknown, expired or revoked. */
  async authenticate(token: string): Promise<string> {
    const session = await this.database.run((manager) =>
      manager.findOneBy(Session, { tokenHash: tokenHash(token) }),
    );
    if (
      !session ||
      session.revokedAt !== null ||
      session.expiresAt.getTime() <= this.clock.now()
    ) {
      throw new ProtocolError(ErrorCode.UNAUTHENTICATED);
    }
    return String(session.userId);
  }

  async revoke(token: string): Promise<void> {
    const now = this.clock.now();
    const result = await this.database.run((manager) =>
      manager
        .createQueryBuilder()
        .update(Session)
        .set({ revokedAt: new Date(now) })
        .where({ tokenHash: tokenHash(token), revokedAt: IsNull() })
        .andWhere('expira_en > :now', { now: new Date(now) })
        .execute(),
    );
    if (!result.affected) throw new ProtocolError(ErrorCode.UNAUTHENTICATED);
  }

  /** Deletes sessions past their expiry: revoked or not, they can never be used again. */
  async purgeExpired(): Promise<number> {
    const result = await this.database.run((manager) =>
      manager.delete(Session, {
        expiresAt: LessThan(new Date(this.clock.now())),
      }),
    );
    return result.affected ?? 0;
  }

  onModuleInit(): void {
    this.stopPurge = startPeriodicTask(
      'session purge',
      PURGE_EVERY_MS,
      () => this.purgeExpired(),
      this.logger,
    );
  }

  onModuleDestroy(): void {
    this.stopPurge?.();
  }
}
