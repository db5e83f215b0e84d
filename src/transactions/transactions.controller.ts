import { Controller } from '@nestjs/common';
import { Ctx, MessagePattern } from '@nestjs/microservices';
import { WritesNonce } from '../protocol/writes-nonce';
import { pendingNonceOf } from '../protocol/verified-request';
import { SessionsService } from '../sessions/sessions.service';
import { SignedPayload } from '../protocol/payload.pipe';
import { CreateTransactionDto } from './dto/create-transaction.dto';
import { ListTransactionsDto } from './dto/list-transactions.dto';
import { TransactionsService } from './transactions.service';

@Controller()
export class TransactionsController {
  constructor(
    private readonly sessions: SessionsService,
    private readonly transactions: TransactionsService,
  ) {}

  @MessagePattern('transactions.create')
  @WritesNonce()
  create(
    @SignedPayload() { token, ...input }: CreateTransactionDto,
    @Ctx() context: object,
  ) {
    // The session is checked by the write itself, in the same transaction.
    return this.transactions.create(token, input, pendingNonceOf(context));
  }

  @MessagePattern('transactions.list')
  async list(@SignedPayload() { token, ...page }: ListTransactionsDto) {
    const userId = await this.sessions.authenticate(token);
    return this.transactions.list(userId, page);
  }
}
