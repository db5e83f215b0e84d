import { Module } from '@nestjs/common';
import { SessionsModule } from '../sessions/sessions.module';
import { TransactionsController } from './transactions.controller';
import { TransactionsService } from './transactions.service';
import { TransactionWriter } from './transaction-writer';

@Module({
  imports: [SessionsModule],
  controllers: [TransactionsController],
  providers: [TransactionsService, TransactionWriter],
  exports: [TransactionsService],
})
export class TransactionsModule {}
