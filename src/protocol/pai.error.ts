import { ErrorCode, FieldProblem } from './error-code';

/**
 * A domain error with a stable code. Thrown anywhere in the service; the exception filter alone
 * turns it into a signed wire reply. `details` are the code's extra fields (PROTOCOL.md 4).
 */
export class PaiError extends Error {
  constructor(
    readonly code: ErrorCode,
    readonly details: Readonly<Record<string, unknown>> = {},
  ) {
    super(code);
    this.name = 'PaiError';
  }

  static badRequest(fields: FieldProblem[]): PaiError {
    return new PaiError(ErrorCode.BAD_REQUEST, { fields });
  }
}
