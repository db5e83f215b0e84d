import { execFileSync } from 'node:child_process';
import {
  existsSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { EXIT_CODES } from '@pai/client/cli/exit-codes';
import { ErrorCode } from '@pai/client/protocol/error-code';
import type { StoredSession } from '@pai/client/cli/session-file';
import { makeCertificate } from '../support/certificate';
import { codeOf, failure } from '../support/failure';
import {
  runPai,
  runPaiOnTerminal,
  type CliRun,
  type Env,
} from '../support/cli-runner';
import { TEST_KEYS, startTestApp, describeTcpOnly } from '../support/test-app';
import { createTestDatabase, databaseKind } from '../support/test-database';
import { useTestApp } from '../support/use-test-app';
import { freePort } from '../support/ports';
import { waitFor } from '../support/wait-for';
import { readDigest } from '../../src/ledger/pai-server';

const PASSWORD = 'correct horse battery';

// Every CLI run starts a Node process that compiles its TypeScript: seconds each, on a busy machine.
jest.setTimeout(120_000);

const closedPort = freePort;

const describeSuite = describeTcpOnly(
  'the command-line client speaks TCP only',
);

describeSuite(`the pai command-line client (${databaseKind})`, () => {
  // Every CLI run is a process of its own; one service serves the file, each test has its own
  // users and session file, so the tests do not depend on one another.
  const service = useTestApp({}, { lifetime: 'block' });
  let dir: string;
  let counter = 0;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'pai-cli-'));
  });

  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  function envFor(extra: Env = {}): Env {
    return {
      PATH: process.env.PATH,
      HOME: dir,
      PAI_HOST: '127.0.0.1',
      PAI_PORT: String(service().port),
      PAI_MAC_KEYS: `default:${TEST_KEYS.default.toString('base64')}`,
      PAI_SESSION_FILE: join(dir, 'session.json'),
      ...extra,
    };
  }

  function pai(args: string[], input?: string, extra?: Env): Promise<CliRun> {
    return runPai(args, envFor(extra), input);
  }

  function newName(): string {
    counter += 1;
    return `cli-${Date.now().toString(36)}-${counter}`;
  }

  async function registeredAndLoggedIn(): Promise<string> {
    const username = newName();
    await service()
      .client()
      .send('auth.register', { username, password: PASSWORD });
    expect((await pai(['login', username], `${PASSWORD}\n`)).code).toBe(0);
    return username;
  }

  function savedSession(): StoredSession {
    return JSON.parse(
      readFileSync(join(dir, 'session.json'), 'utf8'),
    ) as StoredSession;
  }

  it('should take a new user from registration to a recorded transaction and out again', async () => {
    const username = newName();
    const runs: CliRun[] = [];
    const ok = async (args: string[], input?: string) => {
      const run = await pai(args, input);
      runs.push(run);
      expect(run).toMatchObject({ code: 0, stderr: '' });
      return run.stdout;
    };

    expect(await ok(['ping'])).toContain(
      `127.0.0.1:${service().port} answered`,
    );
    expect(await ok(['register', username], `${PASSWORD}\n`)).toContain(
      `registered ${username}`,
    );
    expect(await ok(['login', username], `${PASSWORD}\n`)).toContain(
      `logged in as ${username}`,
    );
    const file = join(dir, 'session.json');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const { token } = savedSession();
    expect(token).toMatch(/^[A-Za-z0-9_-]{22,}$/);

    expect(await ok(['me'])).toMatch(/transactions\s+0\n.*total\s+0\.00/s);
    expect(
      await ok(['pay', '12.50', '--ref', 'order:1', '--desc', 'coffee beans']),
    ).toMatch(/^recorded #\d+\s+12\.50 .*ref order:1 {2}coffee beans$/m);
    expect(
      await ok(['pay', '12.50', '--ref', 'order:1', '--desc', 'coffee beans']),
    ).toMatch(/^already recorded under reference order:1, nothing added/);
    await ok(['pay', '0.3']);

    const history = await ok(['history']);
    expect(history.trim().split('\n')).toEqual([
      expect.stringMatching(/^#\d+\s+0\.30 /),
      expect.stringMatching(/^#\d+\s+12\.50 .*coffee beans$/),
    ]);
    const firstPage = await ok(['history', '--limit', '1']);
    const older = /older ones: pai history --before (\d+)/.exec(firstPage);
    expect(older).not.toBeNull();
    expect(await ok(['history', '--before', older![1]])).toContain('12.50');
    expect(await ok(['me'])).toMatch(
      new RegExp(
        `user\\s+${username} .*transactions\\s+2\\n.*total\\s+12\\.80`,
        's',
      ),
    );

    expect(await ok(['logout'])).toContain(`logged out ${username}`);
    expect(existsSync(file)).toBe(false);
    // Revoked by the service, not merely forgotten here.
    expect(await codeOf(service().client().send('users.me', { token }))).toBe(
      'UNAUTHENTICATED',
    );
    const after = await pai(['me']);
    expect(after.code).toBe(EXIT_CODES.NOT_LOGGED_IN);
    expect(after.stderr).toMatch(/^pai: not logged in/);

    for (const run of runs) {
      expect(run.stdout + run.stderr).not.toContain(token);
      expect(run.stdout + run.stderr).not.toContain(PASSWORD);
    }
  });

  it('should print results and errors as JSON with --json, never the token', async () => {
    const username = newName();
    const registered = await pai(
      ['--json', 'register', username],
      `${PASSWORD}\n`,
    );
    expect(JSON.parse(registered.stdout)).toEqual({
      userId: expect.any(String),
      username,
      createdAt: expect.any(String),
    });

    const login = await pai(['login', username, '--json'], `${PASSWORD}\n`);
    expect(login.code).toBe(0);
    const loggedIn = JSON.parse(login.stdout);
    expect(loggedIn).toEqual({
      userId: expect.any(String),
      username,
      expiresAt: expect.any(String),
      sessionFile: join(dir, 'session.json'),
    });
    expect(login.stdout).not.toContain(savedSession().token);

    const pay = await pai(['--json', 'pay', '7.05', '--ref', 'json:1']);
    expect(JSON.parse(pay.stdout)).toEqual({
      transaction: expect.objectContaining({
        amount: '7.05',
        reference: 'json:1',
        description: null,
      }),
      created: true,
    });
    const history = await pai(['--json', 'history']);
    expect(JSON.parse(history.stdout)).toEqual({
      items: [expect.objectContaining({ amount: '7.05' })],
      nextBefore: null,
    });

    const conflict = await pai(['--json', 'pay', '7.06', '--ref', 'json:1']);
    expect(conflict.code).toBe(EXIT_CODES.IDEMPOTENCY_CONFLICT);
    expect(JSON.parse(conflict.stdout)).toEqual({
      error: { code: 'IDEMPOTENCY_CONFLICT', message: expect.any(String) },
    });

    // Checked against the protocol's amount rule before anything is sent.
    const invalid = await pai(['--json', 'pay', '12.345']);
    expect(invalid.code).toBe(EXIT_CODES.USAGE);
    expect(JSON.parse(invalid.stdout).error).toEqual({
      code: 'USAGE',
      message: expect.stringContaining('amount must be'),
    });

    const usage = await pai(['--json', 'pay']);
    expect(usage.code).toBe(2);
    expect(JSON.parse(usage.stdout).error.code).toBe('USAGE');
  });

  it('should send the amount exactly as typed', async () => {
    await registeredAndLoggedIn();
    // As a float 0.1 + 0.2 is 0.30000000000000004; a digit lost or added would show.
    for (const amount of ['0.1', '0.2', '9999999999999.99']) {
      expect((await pai(['pay', amount])).code).toBe(0);
    }
    const me = await pai(['--json', 'me']);
    expect(JSON.parse(me.stdout).total).toBe('10000000000000.29');
    // Refused against the protocol's amount rule, never rounded.
    expect((await pai(['pay', '1.005'])).code).toBe(EXIT_CODES.USAGE);
    expect((await pai(['pay', '1e3'])).code).toBe(EXIT_CODES.USAGE);
  });

  it('should exit with the code of each refusal from the service', async () => {
    const username = await registeredAndLoggedIn();

    const taken = await pai(
      ['register', username.toUpperCase()],
      `${PASSWORD}\n`,
    );
    expect(taken.code).toBe(EXIT_CODES.USERNAME_TAKEN);
    expect(taken.stderr).toBe(
      'pai: that username is taken (names are compared without regard to case); choose another\n',
    );

    const wrong = await pai(['login', username], 'not the password\n');
    expect(wrong.code).toBe(EXIT_CODES.INVALID_CREDENTIALS);
    expect(wrong.stderr).toBe('pai: wrong username or password\n');

    const short = await pai(['register', newName()], 'short\n');
    expect(short.code).toBe(EXIT_CODES.BAD_REQUEST);
    expect(short.stderr).toMatch(
      /^pai: the service refused the request: password /,
    );

    // Revoked behind the CLI's back: the saved token is useless and is removed.
    await service()
      .client()
      .send('auth.logout', { token: savedSession().token });
    const revoked = await pai(['me']);
    expect(revoked.code).toBe(EXIT_CODES.UNAUTHENTICATED);
    expect(existsSync(join(dir, 'session.json'))).toBe(false);
  });

  it('should revoke the session a new login replaces', async () => {
    const username = await registeredAndLoggedIn();
    const { token: first } = savedSession();
    const again = await pai(
      ['login', username, '--session', join(dir, 'session.json')],
      `${PASSWORD}\n`,
    );
    expect(again.code).toBe(0);
    const { token: second } = savedSession();
    expect(second).not.toBe(first);
    expect(
      await codeOf(service().client().send('users.me', { token: first })),
    ).toBe('UNAUTHENTICATED');
    await expect(
      service().client().send('users.me', { token: second }),
    ).resolves.toHaveProperty('username', username);
  });

  it('should exit RATE_LIMITED with the wait after repeated failed logins', async () => {
    const username = newName();
    const client = service().client();
    await client.send('auth.register', { username, password: PASSWORD });
    // Five failures lock the name for 1 s, each further one doubles the lock: waited out on the
    // service's clock, eleven failures make a lock of 64 s, which outlasts a CLI start.
    let failures = 0;
    while (failures < 11) {
      const refusal = await failure(
        client.send('auth.login', { username, password: 'wrong password' }),
      );
      if (refusal.code === ErrorCode.RATE_LIMITED) {
        service().clock.advance(Number(refusal.details.retryAfterMs) + 1);
      } else {
        expect(refusal.code).toBe('INVALID_CREDENTIALS');
        failures += 1;
      }
    }
    const limited = await pai(['login', username], `${PASSWORD}\n`);
    expect(limited.code).toBe(EXIT_CODES.RATE_LIMITED);
    expect(limited.stderr).toMatch(/try again in (6[0-4]) s\n$/);
  });

  it('should exit with the code of each failure found on the client side', async () => {
    const noSession = await pai(['history']);
    expect(noSession.code).toBe(EXIT_CODES.NOT_LOGGED_IN);

    await registeredAndLoggedIn();
    // The token is only ever sent to the server that issued it.
    const elsewhere = await pai(['me', '--host', 'localhost']);
    expect(elsewhere.code).toBe(EXIT_CODES.NOT_LOGGED_IN);
    expect(elsewhere.stderr).toContain(
      `the saved session is for 127.0.0.1:${service().port}, not localhost:${service().port}`,
    );

    const refused = await pai(['ping', '--port', String(await closedPort())]);
    expect(refused.code).toBe(EXIT_CODES.CONNECTION);
    expect(refused.stderr).toMatch(/ECONNREFUSED/);

    const connections: Socket[] = [];
    const silent: Server = createServer((socket) => connections.push(socket));
    await new Promise<void>((ready) => silent.listen(0, '127.0.0.1', ready));
    try {
      const port = (silent.address() as { port: number }).port;
      const timeout = await pai([
        'ping',
        '--port',
        String(port),
        '--timeout',
        '300',
      ]);
      expect(timeout.code).toBe(EXIT_CODES.TIMEOUT);
    } finally {
      connections.forEach((socket) => socket.destroy());
      silent.close();
    }

    const emptyInput = await pai(['login', 'somebody'], '');
    expect(emptyInput.code).toBe(EXIT_CODES.INPUT);
  });

  it('should not trust a reply it cannot verify, whatever it claims', async () => {
    const unknownKid = await pai(['ping'], undefined, {
      PAI_MAC_KEYS: `elsewhere:${randomBytes(32).toString('base64')}`,
    });
    expect(unknownKid.code).toBe(EXIT_CODES.REPLY_UNVERIFIED);
    expect(unknownKid.stderr).toContain('it claims UNKNOWN_KEY');
    const wrongSecret = await pai(['ping'], undefined, {
      PAI_MAC_KEYS: `default:${randomBytes(32).toString('base64')}`,
    });
    expect(wrongSecret.code).toBe(EXIT_CODES.REPLY_UNVERIFIED);
    expect(wrongSecret.stderr).toContain('it claims MAC_INVALID');
  });

  it('should refuse bad command lines with exit 2 and one line naming the help to read', async () => {
    for (const args of [
      [],
      ['pay'],
      ['frobnicate'],
      ['history', '--limit', 'ten'],
      ['me', '--ref', 'x'],
      ['login', 'a', 'b'],
      ['ping', '--port', '70000'],
      ['pay', '-5'],
      ['history', '--limit', '0'],
      ['history', '--limit', '101'],
    ]) {
      const run = await pai(args);
      expect({ args, code: run.code }).toEqual({ args, code: 2 });
      expect(run.stderr).toMatch(/^pai: [^\n]+ \(see: pai( \w+)? --help\)\n$/);
    }
  });

  it('should read the development key from PAI_DATA_DIR when PAI_MAC_KEYS is unset', async () => {
    const dataDir = join(dir, 'data');
    const missing = await pai(['ping'], undefined, {
      PAI_MAC_KEYS: undefined,
      PAI_DATA_DIR: dataDir,
    });
    expect(missing.code).toBe(EXIT_CODES.CONFIG);
    expect(missing.stderr).toContain(join(dataDir, 'dev-secrets.json'));
    // The CLI only reads the file: a key it made up would be unknown to the service().
    expect(existsSync(dataDir)).toBe(false);

    execFileSync('mkdir', ['-m', '700', dataDir]);
    writeFileSync(
      join(dataDir, 'dev-secrets.json'),
      JSON.stringify({
        PAI_MAC_KEYS: `default:${TEST_KEYS.default.toString('base64')}`,
        PAI_PASSWORD_PEPPER: randomBytes(32).toString('base64'),
        PAI_LEDGER_KEY: randomBytes(32).toString('base64'),
      }),
      { mode: 0o600 },
    );
    const ping = await pai(['ping'], undefined, {
      PAI_MAC_KEYS: undefined,
      PAI_DATA_DIR: dataDir,
    });
    expect(ping).toMatchObject({ code: 0, stderr: '' });
  });

  it('should speak TLS to a service whose CA it is given', async () => {
    const tls = makeCertificate();
    const tlsDatabase = await createTestDatabase();
    const tlsService = await startTestApp(tlsDatabase, { tcp: { tls } });
    try {
      const port = String(tlsService.port);
      const ca = join(dir, 'ca.pem');
      writeFileSync(ca, tls.cert);
      const trusted = await pai(['ping', '--port', port, '--tls-ca', ca]);
      expect(trusted).toMatchObject({ code: 0, stderr: '' });
      const fromEnv = await pai(['ping', '--port', port], undefined, {
        PAI_TLS_CA: ca,
      });
      expect(fromEnv).toMatchObject({ code: 0, stderr: '' });

      const otherCa = join(dir, 'other-ca.pem');
      writeFileSync(otherCa, makeCertificate().cert);
      const untrusted = await pai([
        'ping',
        '--port',
        port,
        '--tls-ca',
        otherCa,
      ]);
      expect(untrusted.code).toBe(EXIT_CODES.CONNECTION);
      const plain = await pai(['ping', '--port', port]);
      expect(plain.code).toBe(EXIT_CODES.CONNECTION);
      const missing = await pai(['ping', '--tls-ca', join(dir, 'none.pem')]);
      expect(missing.code).toBe(EXIT_CODES.CONFIG);
    } finally {
      await tlsService.close();
      await tlsDatabase.drop();
    }
  });

  it('should print the ledger digest as the JSON `pai-server ledger verify --digest` reads back', async () => {
    const client = service().client();
    const username = newName();
    await client.send('auth.register', { username, password: PASSWORD });
    const { token } = await client.send('auth.login', {
      username,
      password: PASSWORD,
    });
    await client.send('transactions.create', { token, amount: '1.00' });
    // Every test app seals (the test configuration's short settle window).
    await waitFor('a first ledger block', () =>
      client.send('ledger.digest', {}).then(
        () => true,
        () => false,
      ),
    );

    const run = await pai(['ledger', 'digest']);
    expect(run.code).toBe(0);
    const file = join(dir, 'digest.json');
    writeFileSync(file, run.stdout);
    const digest = readDigest(file);
    expect(run.stdout).toBe(`${JSON.stringify(digest)}\n`);
    const json = await pai(['ledger', 'digest', '--json']);
    expect(JSON.parse(json.stdout)).toMatchObject({
      block: expect.any(Number),
      hash: expect.stringMatching(/^[0-9a-f]{64}$/),
    });
    expect((await pai(['ledger', 'check'])).code).toBe(EXIT_CODES.USAGE);
  });

  it("should be the client package's `pai` bin, an executable launcher of the compiled main.ts", () => {
    const root = join(__dirname, '..', '..', 'clients', 'node');
    const manifest = JSON.parse(
      readFileSync(join(root, 'package.json'), 'utf8'),
    ) as { bin: Record<string, string> };
    const service = JSON.parse(
      readFileSync(join(root, '..', '..', 'package.json'), 'utf8'),
    ) as { bin: Record<string, string>; scripts: Record<string, string> };
    expect(manifest.bin).toEqual({ pai: 'bin/pai.cjs' });
    // The operator's commands need the database drivers: the service package's own bin.
    expect(service.bin).toEqual({ 'pai-server': 'bin/pai-server.cjs' });
    expect(service.scripts.pai).toBe('node clients/node/bin/pai.cjs');
    const launcher = join(root, manifest.bin.pai);
    // npm exec runs the file itself: it needs its shebang and executable bit after any build.
    expect(statSync(launcher).mode & 0o111).toBe(0o111);
    const text = readFileSync(launcher, 'utf8');
    expect(text.startsWith('#!/usr/bin/env node\n')).toBe(true);
    // The package's tsconfig.build.json compiles <root>/src/cli/main.ts to <root>/dist/cli/main.js.
    expect(text).toContain("join(__dirname, '..', 'dist', 'cli', 'main.js')");
    expect(existsSync(join(root, 'src', 'cli', 'main.ts'))).toBe(true);
  });

  describe('at a terminal', () => {
    it('should read the password twice without echo and register with it', async () => {
      const username = newName();
      const secret = 'typed at a tty';
      const run = await runPaiOnTerminal(['register', username], envFor(), [
        { expect: 'Password: ', send: `${secret}\r` },
        { expect: 'Repeat password: ', send: `${secret}\r` },
      ]);
      expect(run).toMatchObject({ status: 0, timedOut: false, echo: true });
      expect(run.output).toContain('Password: ');
      expect(run.output).toContain(`registered ${username}`);
      expect(run.output).not.toContain(secret);
      // What was read is what was typed: it logs in.
      await expect(
        service().client().send('auth.login', { username, password: secret }),
      ).resolves.toHaveProperty('token');
    });

    it('should let Backspace correct the hidden password', async () => {
      const username = newName();
      await service()
        .client()
        .send('auth.register', { username, password: PASSWORD });
      const typo = `${PASSWORD.slice(0, -1)}X\x7f${PASSWORD.slice(-1)}\r`;
      const run = await runPaiOnTerminal(['login', username], envFor(), [
        { expect: 'Password: ', send: typo },
      ]);
      expect(run).toMatchObject({ status: 0, timedOut: false });
      expect(run.output).toContain(`logged in as ${username}`);
      expect(run.output).not.toContain(PASSWORD.slice(0, 8));
    });

    it('should refuse two different passwords at registration', async () => {
      const run = await runPaiOnTerminal(['register', newName()], envFor(), [
        { expect: 'Password: ', send: 'first password\r' },
        { expect: 'Repeat password: ', send: 'second password\r' },
      ]);
      expect(run.status).toBe(EXIT_CODES.INPUT);
      expect(run.output).toContain('the two passwords differ');
      expect(run.output).not.toContain('first password');
      expect(run.output).not.toContain('second password');
    });

    it('should stop on Ctrl-C at the prompt and give the terminal its echo back', async () => {
      const run = await runPaiOnTerminal(['login', 'whoever'], envFor(), [
        { expect: 'Password: ', send: 'half a pass\x03' },
      ]);
      expect(run).toMatchObject({
        status: EXIT_CODES.INTERRUPTED,
        timedOut: false,
        echo: true,
      });
      expect(run.output).not.toContain('half a pass');
      expect(readdirSync(dir)).toEqual([]);
    });
  });
});
