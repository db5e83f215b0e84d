import { envelopeProblems } from './envelope';

function validEnvelope(): Record<string, unknown> {
  return {
    v: 2,
    kid: 'default',
    ts: 1764288000000,
    nonce: '8rT3kY2mQ0vX9aLp4sHc1w',
    payload: { username: 'alice', password: 'correct horse' },
    mac: 'cb30964465db181c210befab8f113e5ff45ec1fb144f36b1ab89950ae9adc828',
  };
}

/** The fields named by the problems found in a valid envelope with `changes` applied. */
function problemFieldsWith(changes: Record<string, unknown>): string[] {
  return envelopeProblems({ ...validEnvelope(), ...changes }).map(
    (problem) => problem.field,
  );
}

function problemFieldsWithout(field: string): string[] {
  const envelope = validEnvelope();
  delete envelope[field];
  return envelopeProblems(envelope).map((problem) => problem.field);
}

describe(envelopeProblems.name, () => {
  it('should find no problem in a valid envelope', () => {
    expect(envelopeProblems(validEnvelope())).toEqual([]);
  });

  it('should find no problem in an envelope parsed from JSON with an empty payload', () => {
    const envelope = JSON.parse(
      JSON.stringify({ ...validEnvelope(), payload: {} }),
    ) as unknown;

    expect(envelopeProblems(envelope)).toEqual([]);
  });

  it.each([
    ['a string', 'envelope'],
    ['a number', 1],
    ['null', null],
    ['undefined', undefined],
    ['an array', [validEnvelope()]],
  ])('should refuse %s as the envelope', (_what, data) => {
    expect(envelopeProblems(data)).toEqual([
      { field: 'data', problem: expect.any(String) },
    ]);
  });

  it.each(['v', 'kid', 'ts', 'nonce', 'payload', 'mac'])(
    'should refuse an envelope without %s',
    (field) => {
      expect(problemFieldsWithout(field)).toEqual([field]);
    },
  );

  it('should refuse an unknown field without naming it', () => {
    expect(envelopeProblems({ ...validEnvelope(), extra: true })).toEqual([
      { field: 'envelope', problem: 'unknown field' },
    ]);
  });

  it('should report any number of unknown fields as one problem', () => {
    expect(
      problemFieldsWith({ extra: true, more: 1, 'peer text': 'x' }),
    ).toEqual(['envelope']);
  });

  it('should refuse an own "__proto__" field', () => {
    const envelope = JSON.parse(
      JSON.stringify(validEnvelope()).replace(/}$/, ',"__proto__":{"v":1}}'),
    ) as unknown;

    expect(envelopeProblems(envelope).map((p) => p.field)).toEqual([
      'envelope',
    ]);
  });

  describe('v', () => {
    it.each([
      ['1 (the previous version)', 1],
      ['3', 3],
      ['0', 0],
      ['2.5', 2.5],
      ['the string "2"', '2'],
      ['true', true],
      ['null', null],
    ])('should refuse %s', (_what, v) => {
      expect(problemFieldsWith({ v })).toEqual(['v']);
    });
  });

  describe('kid', () => {
    it.each([
      ['one character', 'a'],
      ['64 characters', 'k'.repeat(64)],
      ['dots, dashes and underscores', 'key_2026-11.a'],
    ])('should accept %s', (_what, kid) => {
      expect(problemFieldsWith({ kid })).toEqual([]);
    });

    it.each([
      ['an empty string', ''],
      ['65 characters', 'k'.repeat(65)],
      ['a space', 'my key'],
      ['a colon', 'key:1'],
      ['a slash', 'key/1'],
      ['a non-ASCII letter', 'clé'],
      ['a number', 1],
      ['null', null],
    ])('should refuse %s', (_what, kid) => {
      expect(problemFieldsWith({ kid })).toEqual(['kid']);
    });
  });

  describe('ts', () => {
    it.each([
      ['zero', 0],
      ['the largest safe integer', Number.MAX_SAFE_INTEGER],
    ])('should accept %s', (_what, ts) => {
      expect(problemFieldsWith({ ts })).toEqual([]);
    });

    it.each([
      ['1.5', 1.5],
      ['-1', -1],
      ['the string "123"', '123'],
      ['an unsafe integer', Number.MAX_SAFE_INTEGER + 1],
      ['NaN', NaN],
      ['Infinity', Infinity],
      ['null', null],
    ])('should refuse %s', (_what, ts) => {
      expect(problemFieldsWith({ ts })).toEqual(['ts']);
    });
  });

  describe('nonce', () => {
    it.each([
      ['16 characters', 'A'.repeat(16)],
      ['128 characters', 'A'.repeat(128)],
      ['dashes and underscores', 'nonce_with-dash_and_underscore'],
    ])('should accept %s', (_what, nonce) => {
      expect(problemFieldsWith({ nonce })).toEqual([]);
    });

    it.each([
      ['15 characters', 'A'.repeat(15)],
      ['129 characters', 'A'.repeat(129)],
      ['a dot', 'AAAAAAAAAAAAAAA.A'],
      ['standard base64 "+"', 'AAAAAAAAAAAAAAA+A'],
      ['standard base64 "/"', 'AAAAAAAAAAAAAAA/A'],
      ['base64 padding', 'AAAAAAAAAAAAAAAAAA=='],
      ['a number', 1234567890123456],
      ['null', null],
    ])('should refuse %s', (_what, nonce) => {
      expect(problemFieldsWith({ nonce })).toEqual(['nonce']);
    });
  });

  describe('payload', () => {
    it.each([
      ['an array', []],
      ['null', null],
      ['a string', '{}'],
      ['a number', 0],
    ])('should refuse %s', (_what, payload) => {
      expect(problemFieldsWith({ payload })).toEqual(['payload']);
    });
  });

  describe('mac', () => {
    const mac = validEnvelope().mac as string;

    it.each([
      ['uppercase hex', mac.toUpperCase()],
      ['63 digits', mac.slice(1)],
      ['65 digits', `${mac}0`],
      ['a non-hex letter', `g${mac.slice(1)}`],
      ['base64', Buffer.from(mac, 'hex').toString('base64')],
      ['null', null],
    ])('should refuse %s', (_what, value) => {
      expect(problemFieldsWith({ mac: value })).toEqual(['mac']);
    });
  });

  it('should report every problem at once', () => {
    expect(
      problemFieldsWith({ v: 1, kid: '', ts: -1, extra: 1 }).sort(),
    ).toEqual(['envelope', 'kid', 'ts', 'v']);
  });
});
