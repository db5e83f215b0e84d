import { Injectable } from '@nestjs/common';
import { EntityManager } from 'typeorm';
import { isUniqueViolation } from '../database/database-errors';
import { Database } from '../database/database.service';
import { Clock } from '../common/clock';
import { ErrorCode } from '@pai/client/protocol/error-code';
import { ProtocolError } from '../protocol/protocol-error';
import { User, usernameKey } from './user.entity';

@Injectable()
export class UsersService {
  constructor(
    private readonly database: Database,
    private readonly clock: Clock,
  ) {}

  async create(username: string, passwordHash: string): Promise<User> {
    const createdAt = new Date(this.clock.now());
    const values = {
      username,
      usernameKey: usernameKey(username),
      passwordHash,
      createdAt,
    };
    try {
      const result = await this.database.run((manager) =>
        manager.insert(User, values),
      );
      return Object.assign(new User(), values, {
        id: String(result.identifiers[0].id),
      });
    } catch (error) {
      if (isUniqueViolation(error))
        throw new ProtocolError(ErrorCode.USERNAME_TAKEN);
      throw error;
    }
  }

  findByUsernameKey(key: string): Promise<User | null> {
    return this.database.run((manager) =>
      manager.findOneBy(User, { usernameKey: key }),
    );
  }

  findById(id: string): Promise<User | null> {
    return this.database.run((manager) => manager.findOneBy(User, { id }));
  }

  /**
   * Replaces a password hash only if it is still `current`: a hash another writer stored in the
   * meantime (a concurrent login's re-hash, a change of password) is newer and stays.
   */
  async replacePasswordHash(
    manager: EntityManager,
    id: string,
    current: string,
    replacement: string,
  ): Promise<void> {
    await manager.update(
      User,
      { id, passwordHash: current },
      { passwordHash: replacement },
    );
  }

  /** The highest bcrypt cost among the stored hashes (`$2b$12$…`); undefined with no users. */
  async highestPasswordCost(): Promise<number | undefined> {
    const row = await this.database.run((manager) =>
      manager
        .createQueryBuilder(User, 'u')
        .select('MAX(SUBSTR(u.passwordHash, 5, 2))', 'cost')
        .getRawOne<{ cost: string | null }>(),
    );
    const cost = row?.cost;
    return cost && /^[0-9]{2}$/.test(cost) ? Number(cost) : undefined;
  }
}
