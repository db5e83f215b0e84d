import { Global, Module } from '@nestjs/common';
import { APP_FILTER, APP_GUARD, APP_INTERCEPTOR } from '@nestjs/core';
import { ObservedMacGuard } from './observed.guard';
import { Clock, SystemClock } from '../common/clock';
import { MacGuard } from './mac.guard';
import { NonceRecord } from '../nonce-record/nonce-record';
import { PayloadPipe } from './payload.pipe';
import { ProtocolExceptionFilter } from './protocol-exception.filter';
import { ReplyInterceptor } from './reply.interceptor';
import { ReplySigner } from './reply-signer';
import { UnknownPatternController } from './unknown-pattern.controller';

/** The signed protocol around every handler: guard in, signed reply or signed error out. */
@Global()
@Module({
  controllers: [UnknownPatternController],
  providers: [
    { provide: Clock, useClass: SystemClock },
    ReplySigner,
    NonceRecord,
    PayloadPipe,
    MacGuard,
    // The MAC guard itself, with the request's metrics and log line started around it.
    { provide: APP_GUARD, useClass: ObservedMacGuard },
    { provide: APP_FILTER, useClass: ProtocolExceptionFilter },
    { provide: APP_INTERCEPTOR, useClass: ReplyInterceptor },
  ],
  exports: [Clock, NonceRecord, ReplySigner, PayloadPipe],
})
export class ProtocolModule {}
