import {
  ConsoleLogger,
  type LoggerService,
  type LogLevel,
} from '@nestjs/common';
import { inspect } from 'node:util';

const MAX_ENTRIES = 1_000;

export interface NestLogEntry {
  level: LogLevel;
  /** The logger's context: the class that logged (`ProtocolExceptionFilter`, `ClientTCP`…). */
  context?: string;
  /** The message and every parameter after it, errors with their code and stack. */
  text: string;
}

/**
 * What Nest's Logger writes during a test file: the services' expected errors and warnings (an
 * INTERNAL's error id, a refused TLS handshake, a database going away) are kept here for the test
 * to assert on, not printed. Installed for every test file by nest-log.setup.ts and given to every
 * test app; emptied before each test. PAI_TEST_LOG=1 prints the entries as well, as they come.
 *
 * It keeps the last MAX_ENTRIES only: the heap suite sends tens of thousands of messages through an
 * app in the test's own heap, and a capture that grew with them would read as the service's leak.
 */
export class NestLogCapture implements LoggerService {
  readonly entries: NestLogEntry[] = [];
  private readonly echo =
    process.env.PAI_TEST_LOG === '1' ? new ConsoleLogger() : undefined;

  log(message: unknown, ...params: unknown[]): void {
    this.add('log', message, params);
  }
  error(message: unknown, ...params: unknown[]): void {
    this.add('error', message, params);
  }
  warn(message: unknown, ...params: unknown[]): void {
    this.add('warn', message, params);
  }
  debug(message: unknown, ...params: unknown[]): void {
    this.add('debug', message, params);
  }
  verbose(message: unknown, ...params: unknown[]): void {
    this.add('verbose', message, params);
  }
  fatal(message: unknown, ...params: unknown[]): void {
    this.add('fatal', message, params);
  }

  /** The entries at `level` (from `context`, when given), as text. */
  lines(level: LogLevel, context?: string): string[] {
    return this.entries
      .filter(
        (entry) =>
          entry.level === level &&
          (context === undefined || entry.context === context),
      )
      .map((entry) => entry.text);
  }

  clear(): void {
    this.entries.length = 0;
  }

  private add(level: LogLevel, message: unknown, params: unknown[]): void {
    // Nest's Logger passes its context last, as ConsoleLogger reads it.
    const last = params.at(-1);
    const context = typeof last === 'string' ? last : undefined;
    const rest = context === undefined ? params : params.slice(0, -1);
    const text = [message, ...rest]
      .filter((part) => part !== undefined)
      .map((part) => (typeof part === 'string' ? part : inspect(part)))
      .join(' ');
    this.entries.push({ level, context, text });
    if (this.entries.length > MAX_ENTRIES) this.entries.shift();
    this.echo?.[level](message, ...params);
  }
}

/** The capture of the running test file. */
export const nestLog = new NestLogCapture();
