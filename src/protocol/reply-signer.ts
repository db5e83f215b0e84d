import { ArgumentsHost, Inject, Injectable } from '@nestjs/common';
import { APP_CONFIG, type AppConfig } from '../config/config';
import { Clock } from './clock';
import { replyBinding } from './envelope';
import { ErrorCode } from './error-code';
import { canonicalJson } from './canonical-json';
import { hmacHex, replyMacInputOfCanonical } from './mac';
import { patternOf } from './rpc-pattern';

export interface SuccessReply {
  ok: true;
  ts: number;
  payload: object;
  mac: string | null;
}

export interface ErrorReply {
  ok: false;
  ts: number;
  error: { code: ErrorCode; message: string; [extra: string]: unknown };
  mac: string | null;
}

/** Builds every reply the service sends and signs it with the request's key (PROTOCOL.md 4). */
@Injectable()
export class ReplySigner {
  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly clock: Clock,
  ) {}

  success(host: ArgumentsHost, payload: object): SuccessReply {
    const ts = this.clock.now();
    const reply: SuccessReply = { ok: true, ts, payload, mac: null };
    // JCS of { ok, payload, ts } written directly: the keys are already in sorted order and ts is
    // a safe integer, so only the payload needs the general canonical form.
    reply.mac = this.sign(
      host,
      () => `{"ok":true,"payload":${canonicalJson(payload)},"ts":${ts}}`,
    );
    return reply;
  }

  failure(
    host: ArgumentsHost,
    code: ErrorCode,
    message: string,
    details: Readonly<Record<string, unknown>>,
  ): ErrorReply {
    const error = { ...details, code, message };
    const ts = this.clock.now();
    const reply: ErrorReply = { ok: false, ts, error, mac: null };
    reply.mac = this.sign(host, () => canonicalJson({ ok: false, ts, error }));
    return reply;
  }

  /** The reply's MAC, or null when there is nothing to sign with. */
  private sign(
    host: ArgumentsHost,
    canonicalBody: () => string,
  ): string | null {
    const binding = replyBinding(host.switchToRpc().getData());
    const key = binding ? this.config.macKeys.get(binding.kid) : undefined;
    // Nothing to sign with: the request's kid is unknown, missing or malformed, or it has no
    // well-formed nonce to bind the reply to.
    if (!binding || !key) return null;
    return hmacHex(
      key,
      replyMacInputOfCanonical(
        patternOf(host),
        binding.kid,
        binding.nonce,
        canonicalBody(),
      ),
    );
  }
}
