import { ArgumentsHost, Inject, Injectable } from '@nestjs/common';
import { APP_CONFIG, type AppConfig } from '../config/config';
import { Clock } from './clock';
import { replyBinding } from './envelope';
import { ErrorCode } from './error-code';
import { hmacHex, replyMacInput } from './mac';
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
    return this.seal(host, { ok: true, ts: this.clock.now(), payload });
  }

  failure(
    host: ArgumentsHost,
    code: ErrorCode,
    message: string,
    details: Readonly<Record<string, unknown>>,
  ): ErrorReply {
    const error = { ...details, code, message };
    return this.seal(host, { ok: false, ts: this.clock.now(), error });
  }

  private seal<T extends object>(
    host: ArgumentsHost,
    body: T,
  ): T & { mac: string | null } {
    const binding = replyBinding(host.switchToRpc().getData());
    const key = binding ? this.config.macKeys.get(binding.kid) : undefined;
    if (!binding || !key) {
      // Nothing to sign with: the request's kid is unknown, missing or malformed, or it has no
      // well-formed nonce to bind the reply to.
      return { ...body, mac: null };
    }
    const input = replyMacInput(
      patternOf(host),
      binding.kid,
      binding.nonce,
      body,
    );
    return { ...body, mac: hmacHex(key, input) };
  }
}
