import { PaiClientError } from '@pai/client/client/pai-client.error';

/** The PaiClientError a call rejected with; a call that succeeds fails the test. */
export async function failure(call: Promise<unknown>): Promise<PaiClientError> {
  try {
    await call;
  } catch (error) {
    if (error instanceof PaiClientError) return error;
    throw error;
  }
  throw new Error('expected the call to fail');
}

/** The error code a call rejected with. */
export async function codeOf(call: Promise<unknown>): Promise<string> {
  return (await failure(call)).code;
}
