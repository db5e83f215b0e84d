/**
 * The text form in which TypeORM's SQLite driver writes and compares `datetime` columns (UTC,
 * milliseconds, no zone: DateUtils.mixedDateToUtcDatetimeString), for code that reads or writes
 * those columns with plain SQL.
 */
export const toSqliteDatetime = (date: Date): string =>
  date.toISOString().slice(0, 23).replace('T', ' ');

/** The instant a `datetime` text stands for; an Invalid Date when it is not one. */
export const fromSqliteDatetime = (text: string): Date =>
  new Date(`${text.replace(' ', 'T')}Z`);
