import { Type } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { CredentialsDto } from '../auth/dto/credentials.dto';
import { TokenDto } from '../sessions/token.dto';
import { PingDto } from '../system/ping.dto';
import { CreateTransactionDto } from '../transactions/dto/create-transaction.dto';
import { ListTransactionsDto } from '../transactions/dto/list-transactions.dto';
import { ErrorCode } from '@pai/client/protocol/error-code';
import { ProtocolError } from './protocol-error';
import { PayloadPipe } from './payload.pipe';

const TOKEN = 'tok_abcdefghijklmnopqrstuv-0123';

/** The BAD_REQUEST a payload is refused with, naming exactly these fields. */
function badRequestFor(...fields: string[]) {
  return {
    code: ErrorCode.BAD_REQUEST,
    details: {
      fields: fields.map((field) => ({ field, problem: expect.any(String) })),
    },
  };
}

describe(PayloadPipe.name, () => {
  let pipe: PayloadPipe;

  function transform(value: unknown, metatype: Type<object>) {
    return pipe.transform(value, { type: 'custom', metatype });
  }

  beforeEach(async () => {
    const moduleRef = await Test.createTestingModule({
      providers: [PayloadPipe],
    }).compile();
    pipe = moduleRef.get(PayloadPipe);
  });

  describe('shape', () => {
    it('should return an instance of the DTO holding the payload fields', async () => {
      const result = await transform(
        { username: 'alice', password: 'correct horse' },
        CredentialsDto,
      );

      expect(Object.getPrototypeOf(result)).toBe(CredentialsDto.prototype);
      expect(result).toEqual({ username: 'alice', password: 'correct horse' });
      expect(Object.getOwnPropertyNames(result).sort()).toEqual([
        'password',
        'username',
      ]);
    });

    it('should refuse a field the DTO does not define as an unknown field', async () => {
      await expect(
        transform(
          { username: 'alice', password: 'correct horse', x: 1 },
          CredentialsDto,
        ),
      ).rejects.toMatchObject({
        code: ErrorCode.BAD_REQUEST,
        details: { fields: [{ field: 'payload.x', problem: 'unknown field' }] },
      });
    });

    // BUG (src/protocol/payload.pipe.ts:63): class-validator's whitelist looks fields up in a plain
    // object, so names inherited from Object.prototype whose function has a non-zero length
    // ("__proto__", "constructor", "hasOwnProperty", ...) are never reported as unknown.
    it('should refuse an own "__proto__" key as an unknown field', async () => {
      const value: unknown = JSON.parse(
        '{"__proto__":{"a":1},"username":"alice","password":"correct horse"}',
      );

      await expect(transform(value, CredentialsDto)).rejects.toMatchObject({
        code: ErrorCode.BAD_REQUEST,
        details: {
          fields: [{ field: 'payload.__proto__', problem: 'unknown field' }],
        },
      });
      expect(({} as Record<string, unknown>).a).toBeUndefined();
      expect(
        (CredentialsDto.prototype as unknown as Record<string, unknown>).a,
      ).toBeUndefined();
    });

    it.each([
      'constructor',
      'hasOwnProperty',
      'isPrototypeOf',
      'propertyIsEnumerable',
      '__defineGetter__',
      '__lookupGetter__',
      'toString',
      'valueOf',
    ])(
      'should refuse an own "%s" key as an unknown field (Object.prototype names)',
      async (name) => {
        const value: unknown = JSON.parse(
          `{"token":"${TOKEN}","${name}":{"x":1}}`,
        );

        await expect(transform(value, TokenDto)).rejects.toMatchObject({
          code: ErrorCode.BAD_REQUEST,
          details: {
            fields: [{ field: `payload.${name}`, problem: 'unknown field' }],
          },
        });
      },
    );

    it('should not skip validation of a payload with an own "constructor" key', async () => {
      // An own "constructor" hides the DTO class from class-validator: no rule runs at all, so
      // a transaction with no token and no amount would reach the handler.
      const value: unknown = JSON.parse('{"constructor":1}');

      await expect(
        transform(value, CreateTransactionDto),
      ).rejects.toMatchObject({ code: ErrorCode.BAD_REQUEST });
    });

    it.each([
      ['null', null],
      ['an array', []],
      ['a string', 'payload'],
    ])('should refuse %s as the payload', async (_what, value) => {
      await expect(transform(value, TokenDto)).rejects.toMatchObject(
        badRequestFor('payload'),
      );
    });

    it('should name every missing required field', async () => {
      await expect(transform({}, CredentialsDto)).rejects.toMatchObject(
        badRequestFor('payload.username', 'payload.password'),
      );
    });

    it('should refuse to run without a DTO class', async () => {
      const failure: unknown = await pipe
        .transform({}, { type: 'custom', metatype: Object })
        .catch((error: unknown) => error);

      expect(failure).toBeInstanceOf(Error);
      expect(failure).not.toBeInstanceOf(ProtocolError);
    });
  });

  describe('username', () => {
    it.each([
      ['3 characters', 'abc'],
      ['32 characters', 'a'.repeat(32)],
      ['dots, dashes and underscores', 'Bob.Smith_2-x'],
    ])('should accept %s', async (_what, username) => {
      await expect(
        transform({ username, password: 'correct horse' }, CredentialsDto),
      ).resolves.toMatchObject({ username });
    });

    it.each([
      ['2 characters', 'ab'],
      ['33 characters', 'a'.repeat(33)],
      ['a space', 'alice smith'],
      ['a non-ASCII letter', 'alicé'],
      ['an at sign', 'alice@example'],
      ['a number', 12345],
      ['null', null],
    ])('should refuse %s', async (_what, username) => {
      await expect(
        transform({ username, password: 'correct horse' }, CredentialsDto),
      ).rejects.toMatchObject(badRequestFor('payload.username'));
    });
  });

  describe('password', () => {
    it.each([
      ['8 characters', 'a'.repeat(8)],
      ['128 characters', 'a'.repeat(128)],
      ['128 emoji (256 UTF-16 units)', '😀'.repeat(128)],
      ['spaces and symbols', 'pässwörd ✓ "quoted" \\ back'],
    ])('should accept %s', async (_what, password) => {
      await expect(
        transform({ username: 'alice', password }, CredentialsDto),
      ).resolves.toMatchObject({ password });
    });

    it.each([
      ['7 characters', 'a'.repeat(7)],
      ['129 characters', 'a'.repeat(129)],
      ['129 emoji', '😀'.repeat(129)],
      ['a NUL', 'password\u0000x'],
      ['a newline', 'password\nx'],
      ['a tab', 'password\tx'],
      ['a DEL', 'password\u007fx'],
      ['a number', 1234567890],
    ])('should refuse %s', async (_what, password) => {
      await expect(
        transform({ username: 'alice', password }, CredentialsDto),
      ).rejects.toMatchObject(badRequestFor('payload.password'));
    });
  });

  describe('token', () => {
    it('should accept a base64url token', async () => {
      await expect(transform({ token: TOKEN }, TokenDto)).resolves.toEqual({
        token: TOKEN,
      });
    });

    it.each([
      ['a short token', 'abc'],
      ['standard base64', 'abcdefghijklmnopqrstuv+/'],
      ['a number', 1234567890123456],
      ['null', null],
    ])('should refuse %s', async (_what, token) => {
      await expect(transform({ token }, TokenDto)).rejects.toMatchObject(
        badRequestFor('payload.token'),
      );
    });
  });

  describe('amount', () => {
    it.each([
      ['0.01', '0.01'],
      ['the largest amount', '9999999999999.99'],
      ['one decimal', '12.5'],
      ['no decimals', '7'],
    ])('should accept %s', async (_what, amount) => {
      await expect(
        transform({ token: TOKEN, amount }, CreateTransactionDto),
      ).resolves.toMatchObject({ amount });
    });

    it.each([
      ['the JSON number 12.5', 12.5],
      ['"0"', '0'],
      ['"0.00"', '0.00'],
      ['a leading zero', '01'],
      ['three decimals', '1.234'],
      ['14 integer digits', '12345678901234'],
      ['a negative amount', '-1'],
      ['an exponent', '1e3'],
      ['a trailing dot', '1.'],
      ['surrounding spaces', ' 1 '],
      ['null', null],
    ])('should refuse %s', async (_what, amount) => {
      await expect(
        transform({ token: TOKEN, amount }, CreateTransactionDto),
      ).rejects.toMatchObject(badRequestFor('payload.amount'));
    });
  });

  describe('reference', () => {
    it.each([
      ['an order reference', 'order:42'],
      ['64 characters', 'r'.repeat(64)],
    ])('should accept %s', async (_what, reference) => {
      await expect(
        transform(
          { token: TOKEN, amount: '1', reference },
          CreateTransactionDto,
        ),
      ).resolves.toMatchObject({ reference });
    });

    it.each([
      ['an empty string', ''],
      ['65 characters', 'r'.repeat(65)],
      ['a space', 'order 42'],
      ['a slash', 'order/42'],
      ['a number', 42],
      ['null', null],
    ])('should refuse %s', async (_what, reference) => {
      await expect(
        transform(
          { token: TOKEN, amount: '1', reference },
          CreateTransactionDto,
        ),
      ).rejects.toMatchObject(badRequestFor('payload.reference'));
    });
  });

  describe('description', () => {
    it.each([
      ['an empty string', ''],
      ['140 characters', 'd'.repeat(140)],
      ['140 emoji (280 UTF-16 units)', '😀'.repeat(140)],
    ])('should accept %s', async (_what, description) => {
      await expect(
        transform(
          { token: TOKEN, amount: '1', description },
          CreateTransactionDto,
        ),
      ).resolves.toMatchObject({ description });
    });

    it.each([
      ['141 characters', 'd'.repeat(141)],
      ['a newline', 'line\nbreak'],
      ['a control character', 'bell\u0007'],
      ['a number', 140],
      ['null', null],
    ])('should refuse %s', async (_what, description) => {
      await expect(
        transform(
          { token: TOKEN, amount: '1', description },
          CreateTransactionDto,
        ),
      ).rejects.toMatchObject(badRequestFor('payload.description'));
    });
  });

  describe('limit and before', () => {
    it('should accept a list request without limit or before', async () => {
      await expect(
        transform({ token: TOKEN }, ListTransactionsDto),
      ).resolves.toEqual({ token: TOKEN });
    });

    it.each([1, 20, 100])('should accept the limit %p', async (limit) => {
      await expect(
        transform({ token: TOKEN, limit }, ListTransactionsDto),
      ).resolves.toMatchObject({ limit });
    });

    it.each([
      ['0', 0],
      ['101', 101],
      ['1.5', 1.5],
      ['the string "5"', '5'],
      ['null', null],
    ])('should refuse the limit %s', async (_what, limit) => {
      await expect(
        transform({ token: TOKEN, limit }, ListTransactionsDto),
      ).rejects.toMatchObject(badRequestFor('payload.limit'));
    });

    it.each(['1', '1001', '999999999999999999'])(
      'should accept before %p',
      async (before) => {
        await expect(
          transform({ token: TOKEN, before }, ListTransactionsDto),
        ).resolves.toMatchObject({ before });
      },
    );

    it.each([
      ['a number', 1001],
      ['"0"', '0'],
      ['a leading zero', '01'],
      ['a negative id', '-1'],
      ['letters', 'abc'],
      ['null', null],
    ])('should refuse before as %s', async (_what, before) => {
      await expect(
        transform({ token: TOKEN, before }, ListTransactionsDto),
      ).rejects.toMatchObject(badRequestFor('payload.before'));
    });
  });

  describe('empty payload', () => {
    it('should accept {} for PingDto', async () => {
      const result = await transform({}, PingDto);

      expect(result).toBeInstanceOf(PingDto);
      expect(result).toEqual({});
    });

    it('should refuse any field for PingDto', async () => {
      await expect(transform({ a: 1 }, PingDto)).rejects.toMatchObject({
        code: ErrorCode.BAD_REQUEST,
        details: { fields: [{ field: 'payload.a', problem: 'unknown field' }] },
      });
    });
  });
});
