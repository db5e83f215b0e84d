import { Controller } from '@nestjs/common';
import { MessagePattern } from '@nestjs/microservices';
import { ProtocolError } from './protocol-error';
import { UNKNOWN_PATTERN_ROUTE } from './routing';

@Controller()
export class UnknownPatternController {
  /** Reached only after the guard accepted the message, so the refusal is signed. */
  @MessagePattern(UNKNOWN_PATTERN_ROUTE)
  refuse(): never {
    throw ProtocolError.badRequest([
      { field: 'pattern', problem: 'unknown pattern' },
    ]);
  }
}
