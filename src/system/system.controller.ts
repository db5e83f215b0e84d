import { Controller } from '@nestjs/common';
import { MessagePattern } from '@nestjs/microservices';
import { Clock } from '../common/clock';
import { SignedPayload } from '../protocol/payload.pipe';
import { PingDto } from './ping.dto';

@Controller()
export class SystemController {
  constructor(private readonly clock: Clock) {}

  @MessagePattern('system.ping')
  ping(@SignedPayload() _payload: PingDto): { serverTime: number } {
    return { serverTime: this.clock.now() };
  }
}
