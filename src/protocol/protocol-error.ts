import { ErrorCode, FieldProblem } from '@pai/client/protocol/error-code';

/**
 * A domain error with a stable code. Thrown anywhere in the service; the exception filter alone
 * turns it into a signed wire reply. `details` are the code's extra fields (docs/protocol.md 4).
 */
export class ProtocolError extends Error {
  constructor(
    readonly code: ErrorCode,
    readonly details: Readonly<Record<string, unknown>> = {},
  ) {
    super(code);
    this.name = 'ProtocolError';
  }

  static badRequest(fields: FieldProblem[]): ProtocolError {
    // A field name comes from the peer and may hold a lone surrogate, which has no canonical
    // form: the reply naming it could not be signed, and would not be sent at all.
    return new ProtocolError(ErrorCode.BAD_REQUEST, {
      fields: fields.map((problem) => ({
        ...problem,
        field: problem.field.toWellFormed(),
      })),
    });
  }
}
