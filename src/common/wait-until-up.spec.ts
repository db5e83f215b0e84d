import { backoffMs, waitUntilUp } from './wait-until-up';

const quietLogger = () => ({ log: jest.fn(), warn: jest.fn() });

describe(waitUntilUp.name, () => {
  it('should retry a transient failure with backoff and log each attempt without the error object', async () => {
    const logger = quietLogger();
    const delays: number[] = [];
    let calls = 0;

    const result = await waitUntilUp(
      {
        name: 'broker',
        logger,
        isTransient: () => true,
        describe: () => 'ECONNREFUSED',
      },
      () => {
        calls += 1;
        return calls < 4
          ? Promise.reject(new Error('refused at nats://u:secret@h'))
          : Promise.resolve('up');
      },
      (ms) => Promise.resolve(delays.push(ms)),
    );

    expect(result).toBe('up');
    expect(delays).toEqual([500, 1_000, 2_000]);
    expect(logger.warn).toHaveBeenCalledWith(
      'broker unreachable (ECONNREFUSED), attempt 1; retrying in 500 ms',
    );
    expect(logger.log).toHaveBeenCalledWith(
      'broker connected after 4 attempts',
    );
    expect(JSON.stringify(logger.warn.mock.calls)).not.toContain('secret');
  });

  it('should throw any other failure at once', async () => {
    const sleep = jest.fn(() => Promise.resolve());
    const fatal = new Error('bad credentials');

    await expect(
      waitUntilUp(
        {
          name: 'broker',
          logger: quietLogger(),
          isTransient: () => false,
          describe: String,
        },
        () => Promise.reject(fatal),
        sleep,
      ),
    ).rejects.toBe(fatal);
    expect(sleep).not.toHaveBeenCalled();
  });
});

describe(backoffMs.name, () => {
  it('should cap the backoff at 30 s', () => {
    expect([1, 2, 6, 7, 20].map(backoffMs)).toEqual([
      500, 1_000, 16_000, 30_000, 30_000,
    ]);
  });
});
