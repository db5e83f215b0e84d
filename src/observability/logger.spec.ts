import { Writable } from 'node:stream';
import { createLogger, NestPinoLogger, usesPrettyOutput } from './logger';

class Captured extends Writable {
  readonly records: Record<string, unknown>[] = [];
  override _write(chunk: Buffer, _: string, done: () => void): void {
    for (const line of chunk.toString('utf8').split('\n').filter(Boolean)) {
      this.records.push(JSON.parse(line) as Record<string, unknown>);
    }
    done();
  }
}

describe(createLogger.name, () => {
  let out: Captured;

  beforeEach(() => {
    out = new Captured();
  });

  it('should write one JSON object a line with the level as a word and an ISO time', () => {
    createLogger({ level: 'info', format: 'json' }, true, out).info(
      { pattern: 'system.ping' },
      'request',
    );

    expect(out.records).toHaveLength(1);
    expect(out.records[0]).toMatchObject({
      level: 'info',
      service: 'pai',
      pattern: 'system.ping',
      msg: 'request',
    });
    expect(new Date(out.records[0].time as string).toISOString()).toBe(
      out.records[0].time,
    );
  });

  it('should redact secret-named fields at the top and in an object given to Nest', () => {
    const logger = createLogger({ level: 'info', format: 'json' }, true, out);
    logger.info({ password: 'p4ss' });
    new NestPinoLogger(logger).log({
      token: 't0ken',
      payload: { amount: '1' },
    });

    const written = JSON.stringify(out.records);
    expect(out.records).toHaveLength(2);
    expect(written).not.toContain('p4ss');
    expect(written).not.toContain('t0ken');
    expect(written).not.toContain('amount');
    expect(out.records[0].password).toBe('[redacted]');
  });

  it('should honour the level', () => {
    const logger = createLogger({ level: 'warn', format: 'json' }, true, out);
    logger.info('hidden');
    logger.warn('shown');
    expect(out.records.map((r) => r.msg)).toEqual(['shown']);
  });
});

describe(usesPrettyOutput.name, () => {
  it('should never be pretty in production unless asked', () => {
    expect(usesPrettyOutput({ level: 'info', format: 'auto' }, true)).toBe(
      false,
    );
    expect(usesPrettyOutput({ level: 'info', format: 'json' }, false)).toBe(
      false,
    );
    expect(usesPrettyOutput({ level: 'info', format: 'pretty' }, true)).toBe(
      true,
    );
  });
});

describe(NestPinoLogger.name, () => {
  it("should keep Nest's context and error stack as fields", () => {
    const out = new Captured();
    const nest = new NestPinoLogger(
      createLogger({ level: 'debug', format: 'json' }, true, out),
    );

    nest.log('started', 'NestFactory');
    nest.error('failed', 'Error: x\n    at y', 'ExceptionsHandler');
    nest.warn('careful');

    expect(out.records).toMatchObject([
      { level: 'info', msg: 'started', context: 'NestFactory' },
      {
        level: 'error',
        msg: 'failed',
        context: 'ExceptionsHandler',
        stack: 'Error: x\n    at y',
      },
      { level: 'warn', msg: 'careful' },
    ]);
  });
});
