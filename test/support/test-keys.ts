import { randomBytes } from 'node:crypto';

// Apart from test-app so that a process started outside Jest (the bench, through
// service-process) gets the keys without loading the whole application.

/** MAC keys the test apps know; fixed per run so a restarted app accepts the same clients. */
export const TEST_KEYS: Record<string, Buffer> = {
  default: randomBytes(32),
  '2026-11': randomBytes(32),
};
export const TEST_PEPPER = randomBytes(32);
export const TEST_LEDGER_KEY = randomBytes(32);
