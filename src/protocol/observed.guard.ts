import { CanActivate, ExecutionContext, Injectable } from '@nestjs/common';
import { MacGuard } from './mac.guard';
import { RequestObserver } from '../observability/request-observer';

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
    this.observer.begin(context);
    const admitted = await this.guard.canActivate(context);
    if (admitted) this.observer.admitted(context);
    return admitted;
  }
}
