import { Controller } from '@nestjs/common';
import { MessagePattern } from '@nestjs/microservices';
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
  async create(@SignedPayload() { token, ...input }: CreateTransactionDto) {
    const userId = await this.sessions.authenticate(token);
    return this.transactions.create(userId, input);
  }

  @MessagePattern('transactions.list')
  async list(@SignedPayload() { token, ...page }: ListTransactionsDto) {
    const userId = await this.sessions.authenticate(token);
    return this.transactions.list(userId, page);
  }
}
