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
      options: { json: false },
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
    for (const amount of ['0.10', '007', '1.005', '1e3', '12,50']) {
      expect(parseCliArgs(['pay', amount])).toMatchObject({
        command: { amount },
      });
    }
  });

  it('should leave out the options that were not given', () => {
    const parsed = parseCliArgs(['pay', '1']);
    expect(parsed).toEqual({
      help: false,
      command: { name: 'pay', amount: '1' },
      options: { json: false },
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
    expect(parseCliArgs(['pay', '-h'])).toEqual({ help: true });
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
    [['ping', '--port', '0'], '--port must be a whole number from 1 to 65535'],
    [['ping', '--port', '65536'], '--port must be'],
    [['ping', '--port', '80a'], '--port must be'],
    [['ping', '--timeout', '0'], '--timeout must be'],
    [['ping', '--host', ''], '--host must not be empty'],
    [['ping', '--verbose'], "Unknown option '--verbose'"],
    [['pay', '--ref'], "Option '--ref <value>' argument missing"],
    [['ping', '--json=yes'], ''],
  ])('should refuse %j as a usage error', (argv, message) => {
    expect(usageError(argv)).toContain(message);
  });
});
