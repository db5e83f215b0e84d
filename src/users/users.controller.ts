import { Controller } from '@nestjs/common';
import { MessagePattern } from '@nestjs/microservices';
import { TokenDto } from '../sessions/token.dto';
import { SessionsService } from '../sessions/sessions.service';
import { ErrorCode } from '@pai/client/protocol/error-code';
import { ProtocolError } from '../protocol/protocol-error';
import { SignedPayload } from '../protocol/payload.pipe';
import { TransactionsService } from '../transactions/transactions.service';
import { UsersService } from './users.service';

@Controller()
export class UsersController {
  constructor(
    private readonly sessions: SessionsService,
    private readonly users: UsersService,
    private readonly transactions: TransactionsService,
  ) {}

  @MessagePattern('users.me')
  async me(@SignedPayload() { token }: TokenDto) {
    const userId = await this.sessions.authenticate(token);
    const user = await this.users.findById(userId);
    // Sessions cascade with their user, so a live session without a user cannot happen.
    if (!user) throw new ProtocolError(ErrorCode.UNAUTHENTICATED);
    const summary = await this.transactions.summary(userId);
    return {
      userId,
      username: user.username,
      createdAt: user.createdAt.toISOString(),
      transactionCount: summary.count,
      total: summary.total,
    };
  }
}
