/**
 * A dependency (the database, the replay record, the broker) could not serve the request, and a
 * retry may succeed: the client gets UNAVAILABLE, never INTERNAL. `reason` is a driver or system
 * code (ECONNREFUSED, a timeout), never a message, which may hold a host name or a URL.
 */
export class UnavailableError extends Error {
  constructor(
    readonly dependency: string,
    readonly reason: string,
    options?: { cause?: unknown },
  ) {
    super(`${dependency} unavailable (${reason})`, options);
    this.name = 'UnavailableError';
  }
}
