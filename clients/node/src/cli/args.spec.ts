import { parseCliArgs, UsageError } from './args';

function usageError(argv: string[]): string {
  try {
    parseCliArgs(argv);
  } catch (error) {
    if (error instanceof UsageError) return error.message;
    throw error;
  }
  throw new Error(`expected a usage error for ${argv.join(' ')}`);
}

describe(parseCliArgs.name, () => {
  it('should parse every command with its arguments', () => {
    expect(parseCliArgs(['ping'])).toEqual({
      help: false,
      command: { name: 'ping' },
      options: { json: false, verbose: false },
    });
    expect(parseCliArgs(['register', 'alice']).help).toBe(false);
    expect(parseCliArgs(['login', 'alice'])).toMatchObject({
      command: { name: 'login', username: 'alice' },
    });
    expect(parseCliArgs(['logout'])).toMatchObject({
      command: { name: 'logout' },
    });
    expect(parseCliArgs(['me'])).toMatchObject({ command: { name: 'me' } });
    expect(
      parseCliArgs(['pay', '12.50', '--ref', 'inv:1', '--desc', 'two words']),
    ).toMatchObject({
      command: {
        name: 'pay',
        amount: '12.50',
        reference: 'inv:1',
        description: 'two words',
      },
    });
    expect(
      parseCliArgs(['history', '--limit', '5', '--before', '42']),
    ).toMatchObject({ command: { name: 'history', limit: 5, before: '42' } });
  });

  it('should keep the amount exactly as typed', () => {
    for (const amount of ['0.10', '7', '12.5', '9999999999999.99']) {
      expect(parseCliArgs(['pay', amount])).toMatchObject({
        command: { amount },
      });
    }
  });

  it.each(['007', '1.005', '1e3', '12,50', '0', '0.00', '-5', ' 1', ''])(
    'should refuse the amount %j against the protocol rule',
    (amount) => {
      expect(usageError(['pay', amount])).toContain('the amount must be');
    },
  );

  it('should ask for the version with --version or -V', () => {
    expect(parseCliArgs(['--version'])).toEqual({ help: true, version: true });
    expect(parseCliArgs(['-V'])).toEqual({ help: true, version: true });
  });

  it('should leave out the options that were not given', () => {
    const parsed = parseCliArgs(['pay', '1']);
    expect(parsed).toEqual({
      help: false,
      command: { name: 'pay', amount: '1' },
      options: { json: false, verbose: false },
    });
  });

  it('should take the global options anywhere on the line', () => {
    expect(
      parseCliArgs([
        '--json',
        'me',
        '--host',
        'pai.internal',
        '--port',
        '9090',
        '--tls-ca',
        'ca.pem',
        '--session',
        's.json',
        '--timeout',
        '2500',
      ]),
    ).toEqual({
      help: false,
      command: { name: 'me' },
      options: {
        json: true,
        verbose: false,
        host: 'pai.internal',
        port: 9090,
        tlsCa: 'ca.pem',
        sessionFile: 's.json',
        timeoutMs: 2500,
      },
    });
  });

  it('should ask for help with --help, -h or help', () => {
    expect(parseCliArgs(['--help'])).toEqual({ help: true });
    expect(parseCliArgs(['pay', '-h'])).toEqual({
      help: true,
      command: 'pay',
    });
    expect(parseCliArgs(['help', 'history'])).toEqual({
      help: true,
      command: 'history',
    });
    expect(parseCliArgs(['help'])).toEqual({ help: true });
  });

  it.each([
    [[], 'no command given'],
    [['pay'], 'pay takes exactly one argument, the amount, got 0'],
    [['login'], 'login takes exactly one argument, the username, got 0'],
    [['register', 'a', 'b'], 'register takes exactly one argument'],
    [['me', 'extra'], 'me takes no argument'],
    [['history', '3'], 'history takes no argument'],
    [['transfer'], 'unknown command "transfer"'],
    [['me', '--ref', 'x'], 'me does not take --ref'],
    [['history', '--desc', 'x'], 'history does not take --desc'],
    [['pay', '1', '--limit', '3'], 'pay does not take --limit'],
    [['history', '--limit', 'ten'], '--limit must be a whole number'],
    [['history', '--limit', '-1'], ''],
    [
      ['history', '--limit', '0'],
      '--limit must be a whole number from 1 to 100',
    ],
    [
      ['history', '--limit', '101'],
      '--limit must be a whole number from 1 to 100',
    ],
    [['history', '--before', 'x'], '--before must be a transaction id'],
    [['pay', '1', '--ref', 'a b'], '--ref must be 1-64 characters'],
    [['pay', '1', '--desc', 'x'.repeat(141)], '--desc must be at most 140'],
    [['ping', '--port', '0'], '--port must be a whole number from 1 to 65535'],
    [['ping', '--port', '65536'], '--port must be'],
    [['ping', '--port', '80a'], '--port must be'],
    [['ping', '--timeout', '0'], '--timeout must be'],
    [['ping', '--host', ''], '--host must not be empty'],
    [['ping', '--verbose=x'], ''],
    [['ping', '--loud'], "Unknown option '--loud'"],
    [['pay', '--ref'], "Option '--ref <value>' argument missing"],
    [['ping', '--json=yes'], ''],
  ])('should refuse %j as a usage error', (argv, message) => {
    expect(usageError(argv)).toContain(message);
  });
});
