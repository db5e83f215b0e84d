import {
  centsFromDatabaseTotal,
  formatCents,
  fromDatabaseAmount,
  normalizeAmount,
  parseAmount,
} from './amount';

describe(parseAmount.name, () => {
  it('should parse wire amounts into exact cents', () => {
    expect(parseAmount('12.5')).toBe(1250n);
    expect(parseAmount('0.01')).toBe(1n);
    expect(parseAmount('9999999999999.99')).toBe(999999999999999n);
  });

  it('should refuse what the wire pattern refuses', () => {
    for (const bad of [
      '',
      '01',
      '1.234',
      '-1',
      '1e3',
      ' 1',
      '1.',
      '.5',
      '12345678901234',
    ]) {
      expect(() => parseAmount(bad)).toThrow(RangeError);
    }
  });

  it('should add 0.10 and 0.20 to exactly 0.30', () => {
    expect(formatCents(parseAmount('0.10') + parseAmount('0.20'))).toBe('0.30');
  });
});

describe(formatCents.name, () => {
  it('should write exactly two decimals', () => {
    expect(formatCents(1250n)).toBe('12.50');
    expect(formatCents(30n)).toBe('0.30');
    expect(formatCents(700n)).toBe('7.00');
    expect(normalizeAmount('7')).toBe('7.00');
  });
});

describe(fromDatabaseAmount.name, () => {
  it('should refuse a number read back from the database', () => {
    expect(() => fromDatabaseAmount(12.5)).toThrow(TypeError);
    expect(fromDatabaseAmount('12.5')).toBe('12.50');
  });
});

describe(centsFromDatabaseTotal.name, () => {
  it('should read totals beyond 2^53 cents exactly', () => {
    expect(
      formatCents(centsFromDatabaseTotal('9007199254740993', 'cents')),
    ).toBe('90071992547409.93');
    expect(
      formatCents(centsFromDatabaseTotal('90071992547409.93', 'decimal')),
    ).toBe('90071992547409.93');
    expect(centsFromDatabaseTotal(null, 'cents')).toBe(0n);
  });
});
