import { ArgumentsHost, Injectable } from '@nestjs/common';
import { Clock } from '../common/clock';
import {
  ErrorCode,
  FieldProblem,
  wireMessage,
} from '@pai/client/protocol/error-code';
import { canonicalJson } from '@pai/client/protocol/canonical-json';
import { hmacHex, replyMacInputOfCanonical } from '@pai/client/protocol/mac';
import { verifiedRequestOf, type VerifiedRequest } from './verified-request';

export interface SuccessReply {
  ok: true;
  ts: number;
  payload: object;
  mac: string;
}

export interface ErrorReply {
  ok: false;
  ts: number;
  error: { code: ErrorCode; message: string; [extra: string]: unknown };
  mac: string | null;
}

/**
 * The reply to a request whose MAC did not verify (checks 1-3, or a message that is not even a
 * request): unsigned, since signing what an unauthenticated peer chose would hand it a reply that
 * verifies, and holding only the code, its fixed message and, for BAD_REQUEST, the fixed field
 * problems. Nothing the peer wrote comes back.
 */
export function unsignedFailure(
  code: ErrorCode,
  fields?: readonly FieldProblem[],
  now: number = Date.now(),
): ErrorReply {
  const error: ErrorReply['error'] = { code, message: wireMessage(code) };
  if (code === ErrorCode.BAD_REQUEST && fields) error.fields = fields;
  return { ok: false, ts: now, error, mac: null };
}

/**
 * Builds every reply the service sends (docs/protocol.md 4). A reply is signed if and only if the
 * request's MAC verified, with the request's key, over the request's pattern, kid, nonce and MAC.
 */
@Injectable()
export class ReplySigner {
  constructor(private readonly clock: Clock) {}

  /** Reached only through a handler, so always after the guard verified the request. */
  success(host: ArgumentsHost, payload: object): SuccessReply {
    const request = verifiedRequestOf(host);
    if (!request) {
      throw new Error(
        'a success reply for a request whose MAC was not verified',
      );
    }
    const ts = this.clock.now();
    // JCS of { ok, payload, ts } written directly: the keys are already in sorted order and ts is
    // a safe integer, so only the payload needs the general canonical form.
    const mac = sign(
      request,
      `{"ok":true,"payload":${canonicalJson(payload)},"ts":${ts}}`,
    );
    return { ok: true, ts, payload, mac };
  }

  failure(
    host: ArgumentsHost,
    code: ErrorCode,
    details: Readonly<Record<string, unknown>>,
  ): ErrorReply {
    const request = verifiedRequestOf(host);
    const ts = this.clock.now();
    if (!request) {
      return unsignedFailure(
        code,
        details.fields as FieldProblem[] | undefined,
        ts,
      );
    }
    const error = { ...details, code, message: wireMessage(code) };
    const reply: ErrorReply = { ok: false, ts, error, mac: null };
    reply.mac = sign(request, canonicalJson({ ok: false, ts, error }));
    return reply;
  }
}

function sign(request: VerifiedRequest, canonicalBody: string): string {
  return hmacHex(request.key, replyMacInputOfCanonical(request, canonicalBody));
}
