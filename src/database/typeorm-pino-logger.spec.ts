import { Writable } from 'node:stream';
import type { Logger as TypeOrmLogger } from 'typeorm';
import { createLogger } from '../observability/logger';
import { TypeOrmPinoLogger } from './typeorm-pino-logger';

describe(TypeOrmPinoLogger.name, () => {
  let lines: string[];
  let logger: TypeOrmLogger;

  beforeEach(() => {
    lines = [];
    const out = new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
        done();
      },
    });
    logger = new TypeOrmPinoLogger(
      createLogger({ level: 'debug', format: 'json' }, true, out),
    );
  });

  it('should never log a query or its parameters, even a failed one', () => {
    logger.logQuery('SELECT * FROM sesiones WHERE token_hash = ?', ['h4sh']);
    logger.logQueryError(new Error('boom'), 'INSERT …', ['$2b$12$secret']);

    expect(lines).toEqual([]);
  });

  it('should log migrations at info, as JSON with the TypeORM context', () => {
    logger.log(
      'info',
      'Migration InitialSchema1 has been executed successfully.',
    );

    expect(JSON.parse(lines[0])).toMatchObject({
      level: 'info',
      context: 'TypeORM',
      msg: 'Migration InitialSchema1 has been executed successfully.',
    });
  });

  it('should log warnings at warn', () => {
    logger.log('warn', 'careful');
    expect(JSON.parse(lines[0])).toMatchObject({
      level: 'warn',
      msg: 'careful',
    });
  });
});
