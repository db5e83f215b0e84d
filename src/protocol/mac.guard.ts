import {
  CanActivate,
  ExecutionContext,
  Inject,
  Injectable,
} from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { APP_CONFIG, type AppConfig } from '../config/config';
import { Clock } from '../common/clock';
import { Envelope, envelopeProblems } from '@pai/client/protocol/envelope';
import { ErrorCode } from '@pai/client/protocol/error-code';
import { NotCanonicalizableError } from '@pai/client/protocol/canonical-json';
import { hmacHex, macMatches, requestMacInput } from '@pai/client/protocol/mac';
import { NonceRecord } from '../nonce-record/nonce-record';
import { ProtocolError } from './protocol-error';
import { patternOf } from './rpc-pattern';
import { deferNonce, markVerified } from './verified-request';
import { WRITES_NONCE } from './writes-nonce';

/**
 * Still part of the shape check (step 1): a payload with no canonical form (a lone surrogate,
 * 1e400) cannot have been signed, and is the sender's error, not the service's.
 */
function macInputOf(pattern: string, envelope: Envelope): string {
  try {
    return requestMacInput(pattern, envelope);
  } catch (error) {
    if (!(error instanceof NotCanonicalizableError)) throw error;
    throw ProtocolError.badRequest([
      {
        field: 'payload',
        problem:
          'must be I-JSON: no lone surrogates, no numbers beyond double range',
      },
    ]);
  }
}

/**
 * Global: no handler runs for a message that is not well-formed, signed by a known key, fresh and
 * new, checked in that order (docs/protocol.md 3). The nonce is recorded last, so traffic that
 * fails an earlier check can neither fill nor poison the record.
 */
@Injectable()
export class MacGuard implements CanActivate {
  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly nonces: NonceRecord,
    private readonly clock: Clock,
    private readonly reflector: Reflector,
  ) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const data: unknown = context.switchToRpc().getData();
    const problems = envelopeProblems(data);
    if (problems.length > 0) throw ProtocolError.badRequest(problems);
    const envelope = data as Envelope;
    const pattern = patternOf(context);
    const input = macInputOf(pattern, envelope);

    const key = this.config.macKeys.get(envelope.kid);
    if (!key) throw new ProtocolError(ErrorCode.UNKNOWN_KEY);

    const expected = hmacHex(key, input);
    if (!macMatches(expected, envelope.mac))
      throw new ProtocolError(ErrorCode.MAC_INVALID);
    // From here on every outcome (STALE, REPLAY, the handler's) is signed and bound to this request.
    const { kid, nonce, mac } = envelope;
    markVerified(context, { pattern, kid, nonce, mac, key });

    const now = this.clock.now();
    if (Math.abs(envelope.ts - now) > this.config.macWindowMs) {
      throw new ProtocolError(ErrorCode.STALE, { serverTime: now });
    }

    if (
      this.config.nonceRecord.kind === 'database' &&
      this.reflector.get<boolean>(WRITES_NONCE, context.getHandler())
    ) {
      deferNonce(context, {
        kid,
        nonce,
        ts: envelope.ts,
        expiresAt: envelope.ts + this.config.macWindowMs,
        claimed: false,
      });
      return true;
    }
    const verdict = await this.nonces.consume(kid, nonce, envelope.ts);
    if (verdict === 'replay') throw new ProtocolError(ErrorCode.REPLAY);
    if (verdict === 'stale') {
      // The record cannot vouch for a message this old (it predates what it holds).
      throw new ProtocolError(ErrorCode.STALE, {
        serverTime: this.clock.now(),
      });
    }
    return true;
  }
}
