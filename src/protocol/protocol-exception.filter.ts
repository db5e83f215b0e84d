import {
  ArgumentsHost,
  Catch,
  Logger,
  RpcExceptionFilter,
} from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import { Observable, defer, mergeMap, throwError } from 'rxjs';
import { SampledWarning } from '../common/sampled-warning';
import { UnavailableError } from '../common/unavailable';
import { RequestObserver } from '../observability/request-observer';
import { reportOutcome } from './request-report';
import { ErrorCode } from '@pai/client/protocol/error-code';
import { ProtocolError } from './protocol-error';
import { ErrorReply, ReplySigner } from './reply-signer';
import { NonceRecord } from '../nonce-record/nonce-record';
import { pendingNonceOf } from './verified-request';

/**
 * Every error, from the guard, a pipe or a handler, leaves as a protocol error reply (signed when
 * the request's MAC verified). Without this, Nest's default RPC filter would turn HttpExceptions
 * into an unsigned "Internal server error" and leak nothing useful to the client either.
 */
@Catch()
export class ProtocolExceptionFilter implements RpcExceptionFilter<unknown> {
  private readonly logger = new Logger('ProtocolExceptionFilter');
  /** By dependency: an outage fails every request, and must not write a line for each. */
  private readonly unavailable = new Map<string, SampledWarning>();
  private readonly lastReason = new Map<string, string>();

  constructor(
    private readonly signer: ReplySigner,
    private readonly observer: RequestObserver,
    private readonly nonces: NonceRecord,
  ) {}

  catch(exception: unknown, host: ArgumentsHost): Observable<ErrorReply> {
    const pending = pendingNonceOf(host);
    if (!pending || pending.claimed) return this.reply(exception, host);
    // Refused after the guard deferred its nonce and before the handler recorded it (a payload
    // that fails validation): recorded here, so that a copy is REPLAY as the protocol's order of
    // checks says (step 5 before the payload), and the record holds every admitted nonce.
    pending.claimed = true;
    return defer(async () => {
      try {
        const verdict = await this.nonces.consume(
          pending.kid,
          pending.nonce,
          pending.ts,
        );
        return verdict === 'replay'
          ? new ProtocolError(ErrorCode.REPLAY)
          : exception;
      } catch (error) {
        return error;
      }
    }).pipe(mergeMap((settled) => this.reply(settled, host)));
  }

  private reply(exception: unknown, host: ArgumentsHost): Observable<never> {
    const error = this.toProtocolError(exception);
    const reply = this.signer.failure(host, error.code, error.details);
    reportOutcome(this.observer, host, error.code, error.details.errorId);
    return throwError(() => reply);
  }

  private toProtocolError(exception: unknown): ProtocolError {
    if (exception instanceof ProtocolError) return exception;
    if (exception instanceof UnavailableError) {
      this.unavailableWarning(exception).record();
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

  private unavailableWarning(error: UnavailableError): SampledWarning {
    this.lastReason.set(error.dependency, error.reason);
    let warning = this.unavailable.get(error.dependency);
    if (!warning) {
      const { dependency } = error;
      warning = new SampledWarning(
        this.logger,
        (total) =>
          `${dependency} unavailable (${this.lastReason.get(dependency)}): ${total} request(s) answered UNAVAILABLE since the start`,
      );
      this.unavailable.set(dependency, warning);
    }
    return warning;
  }
}

function describe(exception: unknown): string {
  if (exception instanceof Error)
    return `${exception.name}: ${exception.message}`;
  return typeof exception;
}
