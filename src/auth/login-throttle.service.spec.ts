import { Test } from '@nestjs/testing';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataSource } from 'typeorm';
import { dataSourceOptions } from '../../ormconfig';
import { testConfig } from '../../test/support/config';
import { APP_CONFIG } from '../config/config';
import { Database } from '../database/database.service';
import { Clock, SystemClock } from '../common/clock';
import { ErrorCode } from '@pai/client/protocol/error-code';
import { LoginThrottle } from './login-throttle.entity';
import {
  FREE_FAILURES,
  LoginThrottleService,
  lockDurationMs,
} from './login-throttle.service';

describe(lockDurationMs.name, () => {
  const CAP_MS = 15 * 60_000;

  it('should not lock below 5 failures', () => {
    expect(FREE_FAILURES).toBe(5);
    for (let failures = 0; failures < 5; failures++) {
      expect(lockDurationMs(failures)).toBe(0);
    }
  });

  it('should lock for 1 second at the 5th failure', () => {
    expect(lockDurationMs(5)).toBe(1_000);
  });

  it('should double the lock with each further failure', () => {
    expect(lockDurationMs(6)).toBe(2_000);
    expect(lockDurationMs(7)).toBe(4_000);
    for (let failures = 6; failures <= 14; failures++) {
      expect(lockDurationMs(failures)).toBe(2 * lockDurationMs(failures - 1));
    }
    expect(lockDurationMs(14)).toBe(512_000);
  });

  it('should cap the lock at 15 minutes', () => {
    expect(lockDurationMs(15)).toBe(CAP_MS);
    expect(lockDurationMs(16)).toBe(CAP_MS);
    expect(lockDurationMs(100)).toBe(CAP_MS);
  });

  it.each([35, 36, 1_100, 10_000, 1_000_000, Number.MAX_SAFE_INTEGER])(
    'should give a finite capped lock for %d failures',
    (failures) => {
      const lock = lockDurationMs(failures);

      expect(Number.isFinite(lock)).toBe(true);
      expect(lock).toBe(CAP_MS);
    },
  );
});

describe(LoginThrottleService.name, () => {
  let dataDir: string;
  let dataSource: DataSource;
  let database: Database;
  let throttle: LoginThrottleService;

  beforeEach(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'pai-throttle-'));
    dataSource = await new DataSource(
      dataSourceOptions({ type: 'sqlite', file: join(dataDir, 'pai.sqlite') }),
    ).initialize();
    await dataSource.runMigrations();
    const moduleRef = await Test.createTestingModule({
      providers: [
        LoginThrottleService,
        { provide: APP_CONFIG, useValue: testConfig() },
        { provide: Clock, useValue: new SystemClock() },
        { provide: DataSource, useValue: dataSource },
        Database,
      ],
    }).compile();
    database = moduleRef.get(Database);
    throttle = moduleRef.get(LoginThrottleService);
  });

  afterEach(async () => {
    await dataSource.destroy();
    rmSync(dataDir, { recursive: true, force: true });
  });

  const failuresOf = async (key: string) =>
    (await dataSource.manager.findOneBy(LoginThrottle, { usernameKey: key }))
      ?.failures;

  it('should count an attempt whose row a concurrent successful login deleted', async () => {
    // Another login of the same user succeeds (and deletes the row) between this attempt's
    // insert and its count: the attempt must still be counted, not fail.
    const transaction = database.transaction.bind(database);
    let interleaved = false;
    jest.spyOn(database, 'transaction').mockImplementation(async (work) => {
      if (!interleaved) {
        interleaved = true;
        await throttle.reset(dataSource.manager, 'alice');
      }
      return transaction(work);
    });

    await expect(throttle.reserveAttempt('alice')).resolves.toBeUndefined();
    expect(await failuresOf('alice')).toBe(1);
  });

  it('should count consecutive attempts and refuse the sixth while locked', async () => {
    for (let i = 1; i <= FREE_FAILURES; i += 1) {
      await throttle.reserveAttempt('bob');
      expect(await failuresOf('bob')).toBe(i);
    }
    await expect(throttle.reserveAttempt('bob')).rejects.toMatchObject({
      code: ErrorCode.RATE_LIMITED,
    });
  });
});
