import {
  ArgumentsHost,
  Catch,
  Logger,
  RpcExceptionFilter,
} from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import { Observable, throwError } from 'rxjs';
import { isDatabaseUnavailable } from '../database/database-errors';
import { RequestObserver } from '../observability/request-observer';
import { ErrorCode } from './error-code';
import { ProtocolError } from './protocol-error';
import { ErrorReply, ReplySigner } from './reply-signer';

/**
 * Every error, from the guard, a pipe or a handler, leaves as a protocol error reply (signed when
 * the request's MAC verified). Without this, Nest's default RPC filter would turn HttpExceptions
 * into an unsigned "Internal server error" and leak nothing useful to the client either.
 */
@Catch()
export class ProtocolExceptionFilter implements RpcExceptionFilter<unknown> {
  private readonly logger = new Logger('ProtocolExceptionFilter');

  constructor(
    private readonly signer: ReplySigner,
    private readonly observer: RequestObserver,
  ) {}

  catch(exception: unknown, host: ArgumentsHost): Observable<ErrorReply> {
    const error = this.toPaiError(exception);
    const reply = this.signer.failure(host, error.code, error.details);
    this.observer.failed(host, error.code, error.details.errorId);
    return throwError(() => reply);
  }

  private toPaiError(exception: unknown): ProtocolError {
    if (exception instanceof ProtocolError) return exception;
    if (isDatabaseUnavailable(exception)) {
      this.logger.warn(`database unavailable: ${describe(exception)}`);
      return new ProtocolError(ErrorCode.UNAVAILABLE);
    }
    // Unexpected: the log gets the detail, the client only an id to quote.
    const errorId = randomUUID();
    this.logger.error(
      `unexpected error ${errorId}: ${describe(exception)}`,
      exception instanceof Error ? exception.stack : undefined,
    );
    return new ProtocolError(ErrorCode.INTERNAL, { errorId });
  }
}

function describe(exception: unknown): string {
  if (exception instanceof Error)
    return `${exception.name}: ${exception.message}`;
  return typeof exception;
}
