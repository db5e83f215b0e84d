import { Module } from '@nestjs/common';
import { SessionsModule } from '../sessions/sessions.module';
import { LedgerController } from './ledger.controller';
import { LedgerService } from './ledger.service';
import { Sealer } from './sealer';

@Module({
  imports: [SessionsModule],
  controllers: [LedgerController],
  providers: [LedgerService, Sealer],
})
export class LedgerModule {}
