import { Global, Module } from '@nestjs/common';
import { TerminusModule } from '@nestjs/terminus';
import { APP_CONFIG, type AppConfig } from '../config/config';
import { Health } from './health';
import { SidePort } from './side-port';
import { LOGGER, loggerFor } from './logger';
import { Metrics } from './metrics';
import { RequestObserver } from './request-observer';

/** Logs, metrics and health: the request observer the protocol reports to, and the HTTP side port. */
@Global()
@Module({
  // Terminus' own failure log would repeat every probe; Health logs changes of state instead.
  imports: [TerminusModule.forRoot({ logger: false })],
  providers: [
    {
      provide: LOGGER,
      inject: [APP_CONFIG],
      useFactory: (config: AppConfig) => loggerFor(config),
    },
    Metrics,
    RequestObserver,
    Health,
    SidePort,
  ],
  exports: [LOGGER, Metrics, RequestObserver, Health, SidePort],
})
export class ObservabilityModule {}
