import { Module } from '@nestjs/common';
import { SessionsModule } from '../sessions/sessions.module';
import { TransactionsModule } from '../transactions/transactions.module';
import { UsersController } from './users.controller';
import { UsersService } from './users.service';

@Module({
  imports: [SessionsModule, TransactionsModule],
  controllers: [UsersController],
  providers: [UsersService],
  exports: [UsersService],
})
export class UsersModule {}
