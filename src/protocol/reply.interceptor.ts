import {
  CallHandler,
  ExecutionContext,
  Injectable,
  NestInterceptor,
} from '@nestjs/common';
import { Observable, map } from 'rxjs';
import { RequestObserver } from '../observability/request-observer';
import { reportOutcome } from './request-report';
import { ReplySigner, SuccessReply } from './reply-signer';

/** Wraps what a handler returns into the signed success reply. Errors go to the filter. */
@Injectable()
export class ReplyInterceptor implements NestInterceptor<object, SuccessReply> {
  constructor(
    private readonly signer: ReplySigner,
    private readonly observer: RequestObserver,
  ) {}

  intercept(
    context: ExecutionContext,
    next: CallHandler<object>,
  ): Observable<SuccessReply> {
    return next.handle().pipe(
      map((payload) => {
        const reply = this.signer.success(context, payload);
        reportOutcome(this.observer, context, 'OK');
        return reply;
      }),
    );
  }
}
