import { Controller } from '@nestjs/common';
import { MessagePattern } from '@nestjs/microservices';
import { SignedPayload } from '../protocol/payload.pipe';
import { SessionsService } from '../sessions/sessions.service';
import { DigestDto } from './dto/digest.dto';
import { ReceiptDto } from './dto/receipt.dto';
import { LedgerService } from './ledger.service';

@Controller()
export class LedgerController {
  constructor(
    private readonly sessions: SessionsService,
    private readonly ledger: LedgerService,
  ) {}

  @MessagePattern('ledger.digest')
  digest(@SignedPayload() _payload: DigestDto) {
    return this.ledger.digest();
  }

  /** A transaction's receipt; under the transactions namespace, as it is about the caller's row. */
  @MessagePattern('transactions.receipt')
  async receipt(@SignedPayload() { token, id, digestBlock }: ReceiptDto) {
    const userId = await this.sessions.authenticate(token);
    return this.ledger.receipt(userId, id, digestBlock);
  }
}
