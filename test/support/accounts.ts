import type { PaiClient } from '../../src/client/pai-client';

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
