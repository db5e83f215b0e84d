import type { LoggerService } from '@nestjs/common';
import pino, { type DestinationStream, type Logger } from 'pino';
import { isInstalled, type AppConfig, type LogConfig } from '../config/config';

/** The service's pino logger (a token, as pino's Logger is an interface). */
export const LOGGER = Symbol('LOGGER');

/**
 * Field names whose value is never written, at the top level and in `detail` (where an object
 * given to Nest's logger goes): the request log builds its fields from a fixed list and never
 * holds these; this is the net under a future `logger.info(someObject)`. No wildcard paths: they
 * cost several microseconds on every line, the request lines included.
 */
const REDACTED = ['password', 'token', 'mac', 'secret', 'pepper', 'payload'];

export function usesPrettyOutput(
  config: LogConfig,
  production: boolean,
): boolean {
  if (config.format !== 'auto') return config.format === 'pretty';
  return (
    !production && process.stdout.isTTY === true && isInstalled('pino-pretty')
  );
}

/**
 * One JSON object a line on stdout (level as a word, ISO time), written asynchronously, or pino-pretty's coloured lines
 * at a terminal during development. pino-pretty is a development dependency: the production
 * image does not have it, and `auto` never asks for it there.
 */
export function createLogger(
  config: LogConfig,
  production: boolean,
  destination?: DestinationStream,
): Logger {
  const options: pino.LoggerOptions = {
    level: config.level,
    base: { service: 'pai', pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
    redact: {
      paths: [...REDACTED, ...REDACTED.map((field) => `detail.${field}`)],
      censor: '[redacted]',
    },
  };
  if (!destination && usesPrettyOutput(config, production)) {
    return pino({
      ...options,
      transport: {
        target: 'pino-pretty',
        options: {
          translateTime: 'SYS:HH:MM:ss.l',
          ignore: 'service,pid,context',
          messageFormat: '{if context}[{context}] {end}{msg}',
        },
      },
    });
  }
  // Asynchronous: a request's line is queued, not written on its path; lines queued while a
  // write is under way leave together in the next one. pino flushes the queue synchronously when
  // the process exits, so a clean stop or a fatal error loses nothing (kill -9 may lose the lines
  // of the last moment, never a transaction: those are in the database).
  return pino(
    options,
    destination ?? pino.destination({ dest: 1, sync: false }),
  );
}

const loggers = new WeakMap<AppConfig, Logger>();

/**
 * The one logger of a configuration: main.ts hands it to Nest before the modules exist (so the
 * lines written while waiting for the database are JSON too) and the LOGGER provider returns the
 * same instance.
 */
export function loggerFor(config: AppConfig): Logger {
  let logger = loggers.get(config);
  if (!logger) {
    logger = createLogger(config.log, config.production);
    loggers.set(config, logger);
  }
  return logger;
}

type Level = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace';

/** Nest's own log calls (`new Logger(Context).warn(…)`) written through the pino logger. */
export class NestPinoLogger implements LoggerService {
  constructor(private readonly logger: Logger) {}

  log(message: unknown, ...rest: unknown[]): void {
    this.write('info', message, rest);
  }
  error(message: unknown, ...rest: unknown[]): void {
    this.write('error', message, rest);
  }
  warn(message: unknown, ...rest: unknown[]): void {
    this.write('warn', message, rest);
  }
  debug(message: unknown, ...rest: unknown[]): void {
    this.write('debug', message, rest);
  }
  verbose(message: unknown, ...rest: unknown[]): void {
    this.write('trace', message, rest);
  }
  fatal(message: unknown, ...rest: unknown[]): void {
    this.write('fatal', message, rest);
  }

  /** Nest passes the context last, and to error() a stack before it. */
  private write(level: Level, message: unknown, rest: unknown[]): void {
    if (!this.logger.isLevelEnabled(level)) return;
    const fields: Record<string, unknown> = {};
    const last = rest.length - 1;
    if (last >= 0 && typeof rest[last] === 'string') {
      fields.context = rest[last];
      rest = rest.slice(0, last);
    }
    if (typeof rest[0] === 'string' && rest[0] !== '') fields.stack = rest[0];
    if (message instanceof Error) {
      fields.err = message;
      this.logger[level](fields, message.message);
    } else if (typeof message === 'string') {
      this.logger[level](fields, message);
    } else {
      this.logger[level]({ ...fields, detail: message }, 'log');
    }
  }
}
