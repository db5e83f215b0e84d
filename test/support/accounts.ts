import type { PaiClient } from '@pai/client/client/pai-client';
import type { TestDatabaseFixture } from './use-test-app';

export const TEST_PASSWORD = 'correct horse';

/** Registers `username` and logs in through `client`; resolves with the session token. */
export async function signUp(
  client: PaiClient,
  username: string,
): Promise<string> {
  await client.send('auth.register', { username, password: TEST_PASSWORD });
  const { token } = await client.send('auth.login', {
    username,
    password: TEST_PASSWORD,
  });
  return token;
}

/**
 * Registers `usernames` (password TEST_PASSWORD) on an app at bcrypt `cost`, then stops it: their
 * stored hashes keep that cost when the next app starts at another.
 */
export async function registerAtCost(
  database: TestDatabaseFixture,
  cost: number,
  usernames: string[],
): Promise<void> {
  const app = await database.start({ bcryptCost: cost });
  try {
    const client = app.client();
    for (const username of usernames) {
      await client.send('auth.register', { username, password: TEST_PASSWORD });
    }
  } finally {
    await app.close();
  }
}
