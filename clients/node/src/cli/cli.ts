import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Writable } from 'node:stream';
import type { PaiClient } from '../client/pai-client';
import { DEFAULT_HOST, DEFAULT_PORT } from '../config/defaults';
import { PaiClientError } from '../client/pai-client.error';
import type { TransactionReply } from '../protocol/patterns';
import { ErrorCode } from '../protocol/error-code';
import {
  commandUsage,
  parseCliArgs,
  USAGE,
  UsageError,
  type CliCommand,
  type CliOptions,
} from './args';
import {
  CliError,
  CliErrorCode,
  describeFailure,
  EXIT_CODES,
  type CliFailureCode,
  type FailureContext,
} from './exit-codes';
import { resolveMacKey } from './mac-key';
import { PasswordPrompt, type TerminalInput } from './password-prompt';
import {
  deleteSession,
  readSession,
  sessionFilePath,
  writeSession,
  type StoredSession,
} from './session-file';

type Env = Record<string, string | undefined>;

export interface CliIo {
  argv: readonly string[];
  env: Env;
  stdin: TerminalInput;
  stdout: Writable;
  stderr: Writable;
}

interface Target {
  host: string;
  port: number;
  /** `host:port`, as shown and as saved with a session. */
  server: string;
  ca?: Buffer;
  timeoutMs: number;
  sessionFile: string;
}

/** What a command prints: `json` with --json, else `text`. */
interface Outcome {
  json: unknown;
  text: string;
}

const DEFAULT_TIMEOUT_MS = 10_000;

function resolveTarget(options: CliOptions, env: Env): Target {
  // The service's variables, with the service's defaults: the CLI finds a local service as is.
  let host = options.host ?? (env.PAI_HOST || DEFAULT_HOST);
  // The service's own PAI_HOST may be a wildcard listen address; connect to loopback then.
  if (host === '0.0.0.0' || host === '::') host = '127.0.0.1';
  let port = options.port;
  if (port === undefined) {
    const raw = env.PAI_PORT || String(DEFAULT_PORT);
    if (!/^[0-9]{1,5}$/.test(raw) || Number(raw) < 1 || Number(raw) > 65535) {
      throw new CliError(
        CliErrorCode.CONFIG,
        `PAI_PORT: must be a port number from 1 to 65535, got "${raw}"`,
      );
    }
    port = Number(raw);
  }
  const caFile = options.tlsCa ?? (env.PAI_TLS_CA || undefined);
  let ca: Buffer | undefined;
  if (caFile !== undefined) {
    try {
      ca = readFileSync(caFile);
    } catch (error) {
      throw new CliError(
        CliErrorCode.CONFIG,
        `cannot read the CA certificate ${caFile} (${(error as NodeJS.ErrnoException).code ?? 'error'})`,
      );
    }
  }
  return {
    host,
    port,
    server: host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`,
    ca,
    timeoutMs: options.timeoutMs ?? DEFAULT_TIMEOUT_MS,
    sessionFile: sessionFilePath(env, options.sessionFile),
  };
}

/** Text from the service shown on a terminal: no control characters, no bidi overrides. */
function printable(text: string): string {
  return text.replace(/[\p{Cc}\u202a-\u202e\u2066-\u2069]/gu, '\ufffd');
}

function transactionLine(item: TransactionReply): string {
  const extras = [
    item.reference !== null ? `ref ${item.reference}` : '',
    item.description !== null ? printable(item.description) : '',
  ].filter(Boolean);
  return [
    `#${item.id}`.padEnd(8),
    item.amount.padStart(16),
    `  ${item.createdAt}`,
    extras.length > 0 ? `  ${extras.join('  ')}` : '',
  ].join('');
}

class Commands {
  constructor(
    private readonly client: PaiClient,
    private readonly target: Target,
    private readonly prompt: PasswordPrompt,
  ) {}

  run(command: CliCommand): Promise<Outcome> {
    switch (command.name) {
      case 'ping':
        return this.ping();
      case 'register':
        return this.register(command.username);
      case 'login':
        return this.login(command.username);
      case 'logout':
        return this.withSession((session) => this.logout(session));
      case 'me':
        return this.withSession((session) => this.me(session));
      case 'pay':
        return this.withSession((session) => this.pay(session, command));
      case 'history':
        return this.withSession((session) => this.history(session, command));
      case 'ledger':
        return this.digest();
    }
  }

  /** One line of JSON either way: what an operator redirects into a file for `--digest`. */
  private async digest(): Promise<Outcome> {
    const reply = await this.client.send('ledger.digest', {});
    return { json: reply, text: JSON.stringify(reply) };
  }

  private async ping(): Promise<Outcome> {
    const reply = await this.client.send('system.ping', {});
    return {
      json: reply,
      text: `${this.target.server} answered a signed ping; its clock reads ${new Date(reply.serverTime).toISOString()}`,
    };
  }

  private async register(username: string): Promise<Outcome> {
    const password = await this.prompt.ask('Password: ');
    // A typo in a password nobody has seen would lock its owner out: ask again at a terminal.
    if (this.prompt.interactive) {
      const again = await this.prompt.ask('Repeat password: ');
      if (again !== password) {
        throw new CliError(
          CliErrorCode.INPUT,
          'the two passwords differ; nothing was registered',
        );
      }
    }
    const reply = await this.client.send('auth.register', {
      username,
      password,
    });
    return {
      json: reply,
      text: `registered ${reply.username} (user id ${reply.userId}); now run: pai login ${reply.username}`,
    };
  }

  private async login(username: string): Promise<Outcome> {
    const password = await this.prompt.ask('Password: ');
    const reply = await this.client.send('auth.login', { username, password });
    const previous = this.previousSession();
    writeSession(this.target.sessionFile, {
      server: this.target.server,
      username,
      userId: reply.userId,
      token: reply.token,
      expiresAt: reply.expiresAt,
    });
    if (previous !== undefined && previous.token !== reply.token) {
      // The replaced token would stay valid until it expires; revoke it, but a failure here
      // (already expired, say) does not undo the login that succeeded.
      await this.client
        .send('auth.logout', { token: previous.token })
        .catch(() => undefined);
    }
    // The token stays in the file: printed, it would end up in logs and shell scrollback.
    return {
      json: {
        userId: reply.userId,
        username,
        expiresAt: reply.expiresAt,
        sessionFile: this.target.sessionFile,
      },
      text: `logged in as ${username} (user id ${reply.userId}) until ${reply.expiresAt}; session saved in ${this.target.sessionFile}`,
    };
  }

  /** A session from the same server, if one is saved and readable; never an error. */
  private previousSession(): StoredSession | undefined {
    try {
      const session = readSession(this.target.sessionFile);
      return session?.server === this.target.server ? session : undefined;
    } catch {
      return undefined;
    }
  }

  private async logout(session: StoredSession): Promise<Outcome> {
    const reply = await this.client.send('auth.logout', {
      token: session.token,
    });
    deleteSession(this.target.sessionFile);
    return {
      json: reply,
      text: `logged out ${session.username}; the session is revoked and ${this.target.sessionFile} deleted`,
    };
  }

  private async me(session: StoredSession): Promise<Outcome> {
    const reply = await this.client.send('users.me', { token: session.token });
    return {
      json: reply,
      text: [
        `user          ${reply.username} (id ${reply.userId})`,
        `since         ${reply.createdAt}`,
        `transactions  ${reply.transactionCount}`,
        `total         ${reply.total}`,
      ].join('\n'),
    };
  }

  private async pay(
    session: StoredSession,
    command: Extract<CliCommand, { name: 'pay' }>,
  ): Promise<Outcome> {
    const reply = await this.client.send('transactions.create', {
      token: session.token,
      amount: command.amount,
      ...(command.reference !== undefined && { reference: command.reference }),
      ...(command.description !== undefined && {
        description: command.description,
      }),
    });
    const { transaction } = reply;
    return {
      json: reply,
      text: reply.created
        ? `recorded ${transactionLine(transaction)}`
        : `already recorded under reference ${transaction.reference}, nothing added: ${transactionLine(transaction)}`,
    };
  }

  private async history(
    session: StoredSession,
    command: Extract<CliCommand, { name: 'history' }>,
  ): Promise<Outcome> {
    const reply = await this.client.send('transactions.list', {
      token: session.token,
      ...(command.limit !== undefined && { limit: command.limit }),
      ...(command.before !== undefined && { before: command.before }),
    });
    const lines =
      reply.items.length > 0
        ? reply.items.map(transactionLine)
        : ['no transactions'];
    if (reply.nextBefore !== null) {
      lines.push(`older ones: pai history --before ${reply.nextBefore}`);
    }
    return { json: reply, text: lines.join('\n') };
  }

  private async withSession(
    action: (session: StoredSession) => Promise<Outcome>,
  ): Promise<Outcome> {
    const file = this.target.sessionFile;
    const session = readSession(file);
    if (session === undefined) {
      throw new CliError(
        CliErrorCode.NOT_LOGGED_IN,
        `not logged in (no session in ${file}); run: pai login <user>`,
      );
    }
    // A bearer token goes only to the server that issued it.
    if (session.server !== this.target.server) {
      throw new CliError(
        CliErrorCode.NOT_LOGGED_IN,
        `the saved session is for ${session.server}, not ${this.target.server}; log in to this one with: pai login <user>`,
      );
    }
    try {
      return await action(session);
    } catch (error) {
      if (
        error instanceof PaiClientError &&
        error.code === ErrorCode.UNAUTHENTICATED
      ) {
        deleteSession(file);
      }
      throw error;
    }
  }
}

const REPORTED_DETAILS = ['fields', 'retryAfterMs', 'errorId'] as const;

function report(
  error: unknown,
  io: CliIo,
  json: boolean,
  context: FailureContext | undefined,
  commandName: string | undefined,
): number {
  let code: CliFailureCode;
  let message: string;
  const extra: Record<string, unknown> = {};
  if (error instanceof UsageError) {
    code = CliErrorCode.USAGE;
    message = `${error.message} (see: pai${commandName === undefined ? '' : ` ${commandName}`} --help)`;
  } else if (error instanceof CliError) {
    code = error.code;
    message = error.message;
  } else if (error instanceof PaiClientError && context !== undefined) {
    code = error.code;
    message = describeFailure(error, context);
    for (const name of REPORTED_DETAILS) {
      if (error.details[name] !== undefined) extra[name] = error.details[name];
    }
  } else {
    code = CliErrorCode.UNEXPECTED;
    message = `unexpected failure: ${error instanceof Error ? error.message : String(error)}`;
  }
  if (json) {
    io.stdout.write(
      JSON.stringify({ error: { code, message, ...extra } }) + '\n',
    );
  } else {
    io.stderr.write(`pai: ${printable(message)}\n`);
  }
  return EXIT_CODES[code];
}

/**
 * The client module and Nest, loaded only for a command that talks to the service: --help,
 * --version and a usage error never load Nest (a third of a second). require() rather than
 * import(): synchronous, and the same in the compiled CommonJS and under the test runner.
 */
function loadClient(): {
  createPaiClient: typeof import('../client/pai-client.module').createPaiClient;
  Logger: typeof import('@nestjs/common').Logger;
} {
  /* eslint-disable @typescript-eslint/no-require-imports */
  const { createPaiClient } =
    require('../client/pai-client.module') as typeof import('../client/pai-client.module');
  const { Logger } =
    require('@nestjs/common') as typeof import('@nestjs/common');
  /* eslint-enable @typescript-eslint/no-require-imports */
  return { createPaiClient, Logger };
}

/** The package's version, read from its package.json (two folders up from src/cli and dist/cli). */
function version(): string {
  const manifest = JSON.parse(
    readFileSync(join(__dirname, '..', '..', 'package.json'), 'utf8'),
  ) as { version: string };
  return `pai ${manifest.version}`;
}

/** The command a failed command line named, for the hint to its help. */
function commandNameIn(argv: readonly string[]): string | undefined {
  return argv.find((arg) =>
    ['ping', 'register', 'login', 'logout', 'me', 'pay', 'history'].includes(
      arg,
    ),
  );
}

/** Runs one `pai` command line; resolves to the process exit code, never rejects. */
export async function runCli(io: CliIo): Promise<number> {
  // Known before parsing succeeds, so that a usage error is JSON for a script too.
  let json = io.argv.includes('--json');
  let context: FailureContext | undefined;
  try {
    const parsed = parseCliArgs(io.argv);
    if (parsed.help) {
      io.stdout.write(
        `${parsed.version ? version() : parsed.command ? commandUsage(parsed.command) : USAGE}\n`,
      );
      return 0;
    }
    json = parsed.options.json;
    const target = resolveTarget(parsed.options, io.env);
    const key = resolveMacKey(io.env);
    context = {
      server: target.server,
      kid: key.kid,
      timeoutMs: target.timeoutMs,
    };
    const { createPaiClient, Logger } = loadClient();
    // Nest's own log lines (a connection error with its stack) only when asked for: the CLI
    // reports every failure itself, in one line.
    Logger.overrideLogger(
      parsed.options.verbose ? ['error', 'warn', 'log', 'debug'] : false,
    );
    const client = createPaiClient({
      host: target.host,
      port: target.port,
      kid: key.kid,
      secret: key.secret,
      timeoutMs: target.timeoutMs,
      ...(target.ca !== undefined && { tls: { ca: target.ca } }),
    });
    try {
      const prompt = new PasswordPrompt(io.stdin, io.stderr);
      const outcome = await new Commands(client, target, prompt).run(
        parsed.command,
      );
      io.stdout.write(
        json ? `${JSON.stringify(outcome.json)}\n` : `${outcome.text}\n`,
      );
      return 0;
    } finally {
      await client.close();
    }
  } catch (error) {
    return report(error, io, json, context, commandNameIn(io.argv));
  }
}
