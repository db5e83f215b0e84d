import { CanActivate, ExecutionContext, Injectable } from '@nestjs/common';
import { MacGuard } from './mac.guard';
import { RequestObserver } from '../observability/request-observer';
import { reportAdmitted, reportStart } from './request-report';
import { pendingNonceOf } from './verified-request';

/**
 * The MAC guard with the request's clock and id started before it and its admission noted
 * after it, so a refusal is told apart from a handler's error. The guard's checks are its own.
 */
@Injectable()
export class ObservedMacGuard implements CanActivate {
  constructor(
    private readonly guard: MacGuard,
    private readonly observer: RequestObserver,
  ) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    reportStart(this.observer, context);
    const admitted = await this.guard.canActivate(context);
    // A deferred nonce is admitted when its handler has recorded it (reportOutcome).
    if (admitted && !pendingNonceOf(context)) {
      reportAdmitted(this.observer, context);
    }
    return admitted;
  }
}
