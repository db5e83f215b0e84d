/**
 * Tests that run only where something is there (MySQL, NATS, Redis, a file beside the project).
 * Where it is not, the block or test is skipped with `[reason]` at the end of its name, which the
 * skip reporter (skip-reporter.ts) prints after every run: jest itself lists skipped tests only
 * with --verbose.
 */
export function describeIf(
  runs: boolean,
  reason: string,
): (name: string, body: () => void) => void {
  return (name, body) =>
    runs ? describe(name, body) : describe.skip(`${name} [${reason}]`, body);
}

/** `it` where it can run, else skipped saying why (see describeIf). */
export function itIf(
  runs: boolean,
  reason: string,
): (name: string, fn: jest.ProvidesCallback, timeout?: number) => void {
  return (name, fn, timeout) =>
    runs ? it(name, fn, timeout) : it.skip(`${name} [${reason}]`, fn, timeout);
}
