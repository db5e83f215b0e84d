/**
 * The load client's side of the protocol: test/support/raw-client signs, frames and verifies
 * (its code is independent of the service's); this file adds the bench's key, cheap nonces, the
 * requests the scenarios send and the checks of their replies.
 */
import { randomBytes } from 'node:crypto';
import {
  RawClient,
  replyVerifies,
  signEnvelope,
  type WireReply,
} from '../test/support/raw-client';

export const KID = 'bench';
export const KEY = randomBytes(32);
export const PEPPER = randomBytes(32);
export const PASSWORD = 'bench-password-1';

/** Unique to this run: the start of every nonce, reference and user name it makes. */
export const runId = randomBytes(12).toString('base64url');

// A counter after a random prefix: unique like random nonces, at no cost to the client's pace.
let nonceCounter = 0;
export const nextNonce = () => `${runId}${(nonceCounter++).toString(36)}`;
let referenceCounter = 0;
export const nextReference = () =>
  `bench-${runId}-${(referenceCounter++).toString(36)}`;

export type Envelope = ReturnType<typeof signEnvelope>;

/** A request as sent: its pattern and its signed envelope. */
export interface Sent {
  pattern: string;
  data: Envelope;
}

export const signed = (
  pattern: string,
  payload: Record<string, unknown>,
): Sent => ({
  pattern,
  data: signEnvelope(pattern, payload, KEY, { kid: KID, nonce: nextNonce() }),
});

/**
 * Requests signed ahead per second of load, above what one service instance on this kind of
 * machine answers, so that a run rarely signs during the load (results.json counts those that
 * it did: `signedDuringRun`).
 */
export const PRESIGN = {
  ping: { presignPerSecond: 45_000 },
  create: { presignPerSecond: 15_000 },
};

export const pingRequest = (): Sent => signed('system.ping', {});

export const txRequest = (token: string, amount = '12.50'): Sent =>
  signed('transactions.create', { token, amount, reference: nextReference() });

/** A reply check: null when the reply is what the request should get, else why not. */
export type Check = (reply: WireReply, sent: Sent) => string | null;

// Verifying every reply's MAC would put the client's HMAC into the pace it measures; one in 64
// still catches a service that signs with the wrong key or not at all.
const MAC_SAMPLE = 64;
let okReplies = 0;

export const okReply: Check = (reply, sent) => {
  if (reply?.ok !== true || typeof reply.mac !== 'string') {
    return `refused: ${JSON.stringify(reply?.error ?? reply).slice(0, 200)}`;
  }
  if (
    okReplies++ % MAC_SAMPLE === 0 &&
    !replyVerifies(reply, sent.pattern, sent.data, KEY)
  ) {
    return 'reply MAC does not verify';
  }
  return null;
};

/** The echo baseline answers with the envelope it got. */
export const echoReply: Check = (reply) =>
  typeof (reply as unknown as Partial<Envelope> | undefined)?.nonce === 'string'
    ? null
    : 'bad echo';

// Ids from a counter: RawClient's default, a random UUID, would add 36 characters to every frame
// both ways, at a cost that falls on the client's pace.
let requestId = 0;

/** Sends a request and resolves with its reply. */
export const send = (client: RawClient, sent: Sent): Promise<WireReply> =>
  client.request(sent.pattern, sent.data, (++requestId).toString(36));

export async function connect(port: number): Promise<RawClient> {
  const client = await RawClient.connect(port);
  // Requests in flight on one connection are small writes in a row: Nagle would hold them back.
  client.socket.setNoDelay(true);
  return client;
}

/** One request, its reply checked in full (MAC included); throws on any failure. */
export async function call(
  client: RawClient,
  sent: Sent,
): Promise<Record<string, unknown>> {
  const reply = await send(client, sent);
  if (reply?.ok !== true) {
    throw new Error(
      `${sent.pattern} refused: ${JSON.stringify(reply?.error ?? reply).slice(0, 200)}`,
    );
  }
  if (!replyVerifies(reply, sent.pattern, sent.data, KEY)) {
    throw new Error(`${sent.pattern}: reply MAC does not verify`);
  }
  return reply.payload ?? {};
}

export interface User {
  username: string;
  password: string;
  userId: string;
  token: string;
}

export async function registerAndLogin(
  port: number,
  username: string,
): Promise<User> {
  const client = await connect(port);
  try {
    const password = PASSWORD;
    await call(client, signed('auth.register', { username, password }));
    const login = await call(
      client,
      signed('auth.login', { username, password }),
    );
    const { userId, token } = login;
    if (typeof userId !== 'string' || typeof token !== 'string') {
      throw new Error(
        `auth.login answered without a session: ${JSON.stringify(login)}`,
      );
    }
    return { username, password, userId, token };
  } finally {
    client.close();
  }
}
