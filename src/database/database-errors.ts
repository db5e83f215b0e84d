import { QueryFailedError } from 'typeorm';
import { UnavailableError } from '../common/unavailable';

interface DriverError {
  code?: string;
  errno?: number;
  fatal?: boolean;
}

function driverErrorOf(error: unknown): DriverError | undefined {
  if (error instanceof UnavailableError) return driverErrorOf(error.cause);
  if (error instanceof QueryFailedError) {
    return error.driverError as DriverError;
  }
  if (typeof error === 'object' && error !== null) {
    return error;
  }
  return undefined;
}

/** A unique or primary key was violated: on MySQL/MariaDB ER_DUP_ENTRY, on SQLite the constraint codes. */
export function isUniqueViolation(error: unknown): boolean {
  const driverError = driverErrorOf(error);
  return (
    driverError?.code === 'ER_DUP_ENTRY' ||
    driverError?.code === 'SQLITE_CONSTRAINT_PRIMARYKEY' ||
    driverError?.code === 'SQLITE_CONSTRAINT_UNIQUE'
  );
}

/** InnoDB rolled the transaction back to break a deadlock; running it again is safe. */
export function isDeadlock(error: unknown): boolean {
  return driverErrorOf(error)?.code === 'ER_LOCK_DEADLOCK';
}

/** A unit of work did not finish within PAI_DATABASE_TIMEOUT_MS. */
export class DatabaseTimeoutError extends Error {
  readonly code = 'PAI_DATABASE_TIMEOUT';

  constructor(timeoutMs: number) {
    super(`database did not answer within ${timeoutMs} ms`);
    this.name = 'DatabaseTimeoutError';
  }
}

const UNAVAILABLE_CODES = new Set([
  'PAI_DATABASE_TIMEOUT',
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENOTFOUND',
  'EPIPE',
  'PROTOCOL_CONNECTION_LOST',
  'PROTOCOL_SEQUENCE_TIMEOUT',
  'ER_CON_COUNT_ERROR',
  'ER_SERVER_SHUTDOWN',
  'ER_LOCK_WAIT_TIMEOUT',
  'ER_LOCK_DEADLOCK',
  'SQLITE_BUSY',
  'SQLITE_LOCKED',
  'SQLITE_IOERR',
  'SQLITE_FULL',
  'SQLITE_CANTOPEN',
]);

/**
 * The database could not serve the request, and a retry may succeed: the client gets UNAVAILABLE
 * rather than INTERNAL. Decided on driver codes only, never on message text.
 */
export function isDatabaseUnavailable(error: unknown): boolean {
  const driverError = driverErrorOf(error);
  if (!driverError) return false;
  if (driverError.code && UNAVAILABLE_CODES.has(driverError.code)) return true;
  return driverError.fatal === true;
}

/** The driver's code for an unavailable database, for logs: never the message (it may hold a host). */
export function describeUnavailable(error: unknown): string {
  const driverError = driverErrorOf(error);
  return (
    driverError?.code ??
    (driverError?.fatal ? 'fatal connection error' : 'unknown')
  );
}
