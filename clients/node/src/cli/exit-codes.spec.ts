import {
  ClientErrorCode,
  PaiClientError,
  type PaiErrorCode,
} from '../client/pai-client.error';
import { ErrorCode } from '../protocol/error-code';
import {
  CliErrorCode,
  describeFailure,
  EXIT_CODES,
  type CliFailureCode,
} from './exit-codes';

const ALL_CODES: CliFailureCode[] = [
  ...Object.values(ErrorCode),
  ...Object.values(ClientErrorCode),
  ...Object.values(CliErrorCode),
];
const WIRE_CODES: PaiErrorCode[] = [
  ...Object.values(ErrorCode),
  ...Object.values(ClientErrorCode),
];
const CONTEXT = { server: '127.0.0.1:8080', kid: 'default', timeoutMs: 10_000 };

describe('EXIT_CODES', () => {
  it('should give every protocol, client and CLI error code an exit code', () => {
    expect(Object.keys(EXIT_CODES).sort()).toEqual([...ALL_CODES].sort());
  });

  it('should give each code its own exit code, never 0 (success)', () => {
    const exits = ALL_CODES.map((code) => EXIT_CODES[code]);
    expect(new Set(exits).size).toBe(ALL_CODES.length);
    for (const exit of exits) {
      expect(Number.isInteger(exit) && exit > 0 && exit < 256).toBe(true);
    }
  });

  it('should keep the conventional codes: 1 unexpected, 2 usage, 130 Ctrl-C', () => {
    expect(EXIT_CODES[CliErrorCode.UNEXPECTED]).toBe(1);
    expect(EXIT_CODES[CliErrorCode.USAGE]).toBe(2);
    expect(EXIT_CODES[CliErrorCode.INTERRUPTED]).toBe(130);
  });

  it('should use no exit code a shell gives a signal (129-192) except for Ctrl-C', () => {
    for (const code of ALL_CODES) {
      if (code === CliErrorCode.INTERRUPTED) continue;
      expect({ code, exit: EXIT_CODES[code] < 126 }).toEqual({
        code,
        exit: true,
      });
    }
  });
});

describe(describeFailure.name, () => {
  it.each(WIRE_CODES)('should describe %s in one line of its own', (code) => {
    const text = describeFailure(
      new PaiClientError(code, 'server text'),
      CONTEXT,
    );
    expect(text.length).toBeGreaterThan(10);
    expect(text).not.toMatch(/\n/);
    const others = WIRE_CODES.filter((other) => other !== code).map((other) =>
      describeFailure(new PaiClientError(other, 'x'), CONTEXT),
    );
    expect(others).not.toContain(text);
  });

  it('should name the fields the service refused, without the payload prefix', () => {
    const error = new PaiClientError(ErrorCode.BAD_REQUEST, 'invalid', {
      fields: [
        { field: 'payload.amount', problem: 'must be a decimal string' },
        { field: 'payload.reference', problem: 'must be 1-64 characters' },
      ],
    });
    expect(describeFailure(error, CONTEXT)).toBe(
      'the service refused the request: amount must be a decimal string; reference must be 1-64 characters',
    );
  });

  it('should say how long to wait when rate limited', () => {
    const error = new PaiClientError(ErrorCode.RATE_LIMITED, 'slow down', {
      retryAfterMs: 4_001,
    });
    expect(describeFailure(error, CONTEXT)).toContain('try again in 5 s');
  });

  it('should quote the error id of an INTERNAL failure', () => {
    const error = new PaiClientError(ErrorCode.INTERNAL, 'failed', {
      errorId: 'e-123',
    });
    expect(describeFailure(error, CONTEXT)).toContain('error id e-123');
  });

  it('should say what an unverified reply claims without trusting it', () => {
    const error = new PaiClientError(
      ClientErrorCode.REPLY_UNVERIFIED,
      'reply MAC missing or wrong',
      { claimedCode: 'UNKNOWN_KEY' },
    );
    const text = describeFailure(error, CONTEXT);
    expect(text).toContain('not trusted; it claims UNKNOWN_KEY');
    expect(text).toContain('key id "default"');
  });
});
