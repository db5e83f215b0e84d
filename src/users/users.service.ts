import { Injectable } from '@nestjs/common';
import { isUniqueViolation } from '../database/database-errors';
import { Database } from '../database/database.service';
import { Clock } from '../protocol/clock';
import { ErrorCode } from '../protocol/error-code';
import { PaiError } from '../protocol/pai.error';
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
        throw new PaiError(ErrorCode.USERNAME_TAKEN);
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
}
