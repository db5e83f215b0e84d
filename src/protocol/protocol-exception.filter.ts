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
import { PaiError } from './pai.error';
import { ErrorReply, ReplySigner } from './reply-signer';

/** The one place where an error code becomes wire text. Exhaustive: a new code must be given one. */
export function wireMessage(code: ErrorCode): string {
  switch (code) {
    case ErrorCode.BAD_REQUEST:
      return 'the request is not valid';
    case ErrorCode.UNKNOWN_KEY:
      return 'unknown key id';
    case ErrorCode.MAC_INVALID:
      return 'message authentication failed';
    case ErrorCode.STALE:
      return 'timestamp outside the accepted window';
    case ErrorCode.REPLAY:
      return 'message already accepted';
    case ErrorCode.USERNAME_TAKEN:
      return 'username already taken';
    case ErrorCode.INVALID_CREDENTIALS:
      return 'invalid username or password';
    case ErrorCode.UNAUTHENTICATED:
      return 'session token unknown, expired or revoked';
    case ErrorCode.RATE_LIMITED:
      return 'too many failed logins, retry later';
    case ErrorCode.IDEMPOTENCY_CONFLICT:
      return 'reference already used with a different amount or description';
    case ErrorCode.UNAVAILABLE:
      return 'service temporarily unavailable, safe to retry';
    case ErrorCode.INTERNAL:
      return 'internal error';
    default: {
      const unreachable: never = code;
      return unreachable;
    }
  }
}

/**
 * Every error, from the guard, a pipe or a handler, leaves as a signed protocol error reply.
 * Without this, Nest's default RPC filter would turn HttpExceptions into an unsigned
 * "Internal server error" and leak nothing useful to the client either.
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
    const reply = this.signer.failure(
      host,
      error.code,
      wireMessage(error.code),
      error.details,
    );
    this.observer.failed(host, error.code, error.details.errorId);
    return throwError(() => reply);
  }

  private toPaiError(exception: unknown): PaiError {
    if (exception instanceof PaiError) return exception;
    if (isDatabaseUnavailable(exception)) {
      this.logger.warn(`database unavailable: ${describe(exception)}`);
      return new PaiError(ErrorCode.UNAVAILABLE);
    }
    // Unexpected: the log gets the detail, the client only an id to quote.
    const errorId = randomUUID();
    this.logger.error(
      `unexpected error ${errorId}: ${describe(exception)}`,
      exception instanceof Error ? exception.stack : undefined,
    );
    return new PaiError(ErrorCode.INTERNAL, { errorId });
  }
}

function describe(exception: unknown): string {
  if (exception instanceof Error)
    return `${exception.name}: ${exception.message}`;
  return typeof exception;
}
