import {
  CallHandler,
  ExecutionContext,
  Injectable,
  NestInterceptor,
} from '@nestjs/common';
import { Observable, map } from 'rxjs';
import { ReplySigner, SuccessReply } from './reply-signer';

/** Wraps what a handler returns into the signed success reply. Errors go to the filter. */
@Injectable()
export class ReplyInterceptor implements NestInterceptor<object, SuccessReply> {
  constructor(private readonly signer: ReplySigner) {}

  intercept(
    context: ExecutionContext,
    next: CallHandler<object>,
  ): Observable<SuccessReply> {
    return next
      .handle()
      .pipe(map((payload) => this.signer.success(context, payload)));
  }
}
