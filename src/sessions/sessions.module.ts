import { Module } from '@nestjs/common';
import { SessionsService } from './sessions.service';

/** Its own module so that users and transactions can check tokens without importing all of auth. */
@Module({
  providers: [SessionsService],
  exports: [SessionsService],
})
export class SessionsModule {}
