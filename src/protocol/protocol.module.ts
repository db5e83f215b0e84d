import { Global, Module } from '@nestjs/common';
import { APP_FILTER, APP_GUARD, APP_INTERCEPTOR } from '@nestjs/core';
import { ObservedMacGuard } from '../observability/observed.guard';
import { Clock, SystemClock } from './clock';
import { MacGuard } from './mac.guard';
import { NonceStore } from './nonce-store';
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
    NonceStore,
    PayloadPipe,
    MacGuard,
    // The MAC guard itself, with the request's metrics and log line started around it.
    { provide: APP_GUARD, useClass: ObservedMacGuard },
    { provide: APP_FILTER, useClass: ProtocolExceptionFilter },
    { provide: APP_INTERCEPTOR, useClass: ReplyInterceptor },
  ],
  exports: [Clock, NonceStore, ReplySigner, PayloadPipe],
})
export class ProtocolModule {}
