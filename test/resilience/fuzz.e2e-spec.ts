/**
 * Hostile input at volume: over 100 000 mutated envelopes, random requests and garbage
 * frames through the framing parser and the guard, each answer checked against PROTOCOL.md.
 *
 * Where the traffic goes, and why:
 * - Envelopes (about 50 000: mutated signed ones, random `data`) go over real TCP to the real
 *   app, pipelined on four long-lived connections, 64 in flight on each. That is the whole
 *   production path (framing, Nest's server, guard, filter, reply signing, database) with nothing
 *   faked, and pipelining makes it fast enough (2 000 - 8 000 messages a second on a loaded
 *   two-core machine, depending on payload sizes) that no in-process shortcut is needed for them.
 * - Garbage frames close their connection, so each needs a connection of its own. The bulk of
 *   them (52 000 streams) go straight into the service's socket class (an unconnected net.Socket
 *   fed `data` events, as its unit spec does), compared with an independent reading of the
 *   framing: the socket class is the only code that sees those bytes before Nest's server, and
 *   this way a stream costs microseconds instead of a TCP handshake. A smaller share (1 500
 *   streams) goes over real TCP, split across writes, to check the server around the parser: it
 *   closes the connection, answers what it answers with valid replies, and keeps serving.
 * - Few messages are accepted (about 1 %): each acceptance is a durable database write.
 * The run's seed is in the suite's name; FUZZ_SEED=<n> replays it.
 */
import fc from 'fast-check';
import { Socket } from 'node:net';
import { runInThisContext } from 'node:vm';
import { framedSocketClass } from '../../src/transport/framed-socket';
import { NonceRecord } from '../../src/nonce-record/nonce-record';
import { RawClient, signEnvelope, type WireReply } from '../support/raw-client';
import { report } from '../support/report';
import {
  build,
  randomDataArb,
  recipeArb,
  type Built,
  type Recipe,
} from '../support/hostile/envelopes';
import { readFrames } from '../support/hostile/framing';
import { GarbageConnection } from '../support/hostile/garbage-connection';
import { tableNonces } from '../support/hostile/nonce-table';
import {
  WINDOW_MS,
  expectGuard,
  isObject,
  replyProblems,
  setStartCutoff,
} from '../support/hostile/oracle';
import { Pipeline } from '../support/hostile/pipeline';
import { streamArb } from '../support/hostile/streams';
import { TEST_KEYS, describeTcpOnly, signedFor } from '../support/test-app';
import { databaseKind } from '../support/test-database';
import { useTestApp } from '../support/use-test-app';
import { waitFor } from '../support/wait-for';

const SEED = Number(process.env.FUZZ_SEED ?? Date.now() % 2 ** 31);
const BATCH = 500;
const COUNTS = {
  mutated: 40_000,
  randomData: 8_000,
  parserStreams: 52_000,
  tcpStreams: 1_500,
};
const MAX_FRAME = 65_536;
const NONCE_FORM = /^[A-Za-z0-9_-]{16,128}$/;

jest.setTimeout(180_000);

/** Every request is answered; one left unanswered is a finding, not a hung run. */
const REPLY_TIMEOUT_MS = 10_000;
function withinTime<T>(promise: Promise<T>): Promise<T | null> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise<null>((resolve) => {
      timer = setTimeout(() => resolve(null), REPLY_TIMEOUT_MS);
    }),
  ]);
}

/** The real process: jest hands tests a copy whose listeners Node never calls. */
const realProcess = runInThisContext('process') as NodeJS.Process;

const describeSuite = describeTcpOnly(
  'hostile input through the TCP framing; over NATS the broker frames messages',
);

describeSuite(`Hostile input at volume (${databaseKind}, seed ${SEED})`, () => {
  const crashes: unknown[] = [];
  const onCrash = (error: unknown) => crashes.push(error);
  const prototypeKeys = Object.getOwnPropertyNames(Object.prototype).sort();

  /** Every message sent, by what it was. */
  const counts: Record<string, number> = {};
  const count = (what: string, n = 1) =>
    (counts[what] = (counts[what] ?? 0) + n);
  /** `kid\nnonce` of every message the guard must have accepted. */
  const accepted = new Set<string>();
  /** When each accepted pair may leave the record: its ts plus the window. */
  const acceptedUntil = new Map<string, number>();
  const accept = (kid: string, nonce: string, ts: number) => {
    accepted.add(`${kid}\n${nonce}`);
    acceptedUntil.set(`${kid}\n${nonce}`, ts + WINDOW_MS);
  };
  /** A few accepted messages, to replay. */
  const acceptedMessages: Built[] = [];
  /** Well-formed nonces of messages that failed a check (or were events), by mutation. */
  const failedNonces = new Map<string, { kid: string; nonce: string }[]>();
  /** Every well-formed nonce sent so far: no nonce is sent twice until the replay phase. */
  const usedNonces = new Set<string>();
  const problems: string[] = [];

  beforeAll(() => {
    realProcess.on('unhandledRejection', onCrash);
    realProcess.on('uncaughtException', onCrash);
  });
  // The suite judges each message by the guard's rules; the connection-level rule that closes a
  // connection after a few unauthenticated messages in a row has suites of its own.
  const service = useTestApp(
    { tcp: { maxUnverifiedInRow: 1_000_000 } },
    { lifetime: 'block' },
  );
  beforeAll(() => {
    setStartCutoff(
      service().config.nonceRecord.kind === 'memory'
        ? service().app.get(NonceRecord).startedAt
        : -Infinity,
    );
    report(`fuzz seed ${SEED} (FUZZ_SEED=${SEED} replays this run)`);
  });
  afterAll(() => {
    realProcess.off('unhandledRejection', onCrash);
    realProcess.off('uncaughtException', onCrash);
  });

  /** Sends one message on `client` and checks its reply against the oracle. */
  async function sendChecked(
    client: RawClient,
    message: Built,
    kind: string,
  ): Promise<void> {
    const { pattern, data } = message;
    const nonce = isObject(data) ? data.nonce : undefined;
    const wellFormed = typeof nonce === 'string' && NONCE_FORM.test(nonce);
    if (wellFormed) {
      // A duplicate in flight would make REPLAY depend on scheduling; skip it.
      if (usedNonces.has(nonce)) return void count('skipped duplicate nonce');
      usedNonces.add(nonce);
    }
    const kid = isObject(data) && typeof data.kid === 'string' ? data.kid : '';
    const failed = (reuseKid: string) => {
      if (!wellFormed) return;
      const list = failedNonces.get(kind) ?? [];
      list.push({ kid: reuseKid, nonce });
      failedNonces.set(kind, list);
    };
    const reuseKid = Object.hasOwn(TEST_KEYS, kid) ? kid : 'default';
    if (!message.request) {
      Pipeline.event(client, pattern, data);
      count(`sent ${kind}`);
      failed(reuseKid);
      return;
    }
    const expectation = expectGuard(pattern, data, Date.now(), accepted);
    const reply = await withinTime(client.request(pattern, data));
    count(`sent ${kind}`);
    if (reply === null) {
      problems.push(
        `${kind} ${pattern}: no reply within ${REPLY_TIMEOUT_MS} ms`,
      );
      return;
    }
    if (expectation.uncanonical) count('payloads with no canonical form');
    const found = replyProblems(reply, pattern, data, expectation);
    if (found.length > 0 && problems.length < 20) {
      problems.push(
        `${kind} ${pattern}: ${found.join('; ')}\n  sent ${JSON.stringify(data)?.slice(0, 400)}\n  got ${JSON.stringify(reply)?.slice(0, 400)}`,
      );
    }
    const verdict = expectation.verdicts[0];
    count(`verdict ${verdict}`);
    if (verdict === 'PASS') count(`verdict PASS ${kind}`);
    if (verdict === 'PASS') {
      accept(kid, nonce as string, (data as { ts: number }).ts);
      if (acceptedMessages.length < 500) acceptedMessages.push(message);
    } else if (verdict !== 'REPLAY') {
      failed(reuseKid);
    }
  }

  it('should answer every mutated signed envelope and random request as PROTOCOL.md says', async () => {
    const pipeline = await Pipeline.open(service().port);
    let serial = 0;
    // Nonces get a unique suffix: fast-check favours small, repeated strings.
    const unique = (recipe: Recipe): Recipe => ({
      ...recipe,
      nonce: `${recipe.nonce.slice(0, 24)}${(serial++).toString(36).padStart(8, '0')}`,
    });
    try {
      await fc.assert(
        fc.asyncProperty(
          fc.array(recipeArb, { minLength: BATCH, maxLength: BATCH }),
          async (recipes) => {
            await pipeline.run(recipes, (client, recipe) =>
              sendChecked(
                client,
                build(unique(recipe), Date.now()),
                recipe.mutation.kind,
              ).catch((error: unknown) => void problems.push(String(error))),
            );
            // Problems are collected and asserted below: fast-check's own report would print
            // the whole batch of 500 messages.
            return true;
          },
        ),
        { seed: SEED, numRuns: COUNTS.mutated / BATCH, endOnFailure: true },
      );
      await fc.assert(
        fc.asyncProperty(
          fc.array(randomDataArb, { minLength: BATCH, maxLength: BATCH }),
          async (requests) => {
            await pipeline.run(requests, (client, { pattern, data }) =>
              sendChecked(
                client,
                { pattern, data, request: true },
                'randomData',
              ).catch((error: unknown) => void problems.push(String(error))),
            );
            return true;
          },
        ),
        { seed: SEED, numRuns: COUNTS.randomData / BATCH, endOnFailure: true },
      );
    } finally {
      pipeline.close();
    }
    expect(problems).toEqual([]);
    expect(accepted.size).toBeGreaterThan(200);
  });

  it('should refuse every accepted message sent again, with a signed REPLAY', async () => {
    const pipeline = await Pipeline.open(service().port);
    const codes: string[] = [];
    try {
      await pipeline.run(
        acceptedMessages,
        async (client, { pattern, data }) => {
          // REPLAY, or STALE for one whose ts has left the window meanwhile (checked first).
          const expectation = expectGuard(pattern, data, Date.now(), accepted);
          const reply = await client.request(pattern, data);
          count('sent replay');
          codes.push(String(reply.error?.code));
          const found = replyProblems(reply, pattern, data, expectation);
          if (found.length > 0) problems.push(`replay: ${found.join('; ')}`);
        },
      );
    } finally {
      pipeline.close();
    }
    expect(problems).toEqual([]);
    expect(acceptedMessages.length).toBeGreaterThan(100);
    expect(codes.filter((code) => code === 'REPLAY').length).toBeGreaterThan(
      50,
    );
  });

  it('should have recorded the nonce of no message that failed a check', async () => {
    // Whatever holds the record (table or memory), a failed message's nonce must still be
    // accepted in a genuine message. Every kind of failure is tried, 40 nonces of each (each
    // acceptance is a durable write, the slow part of this suite).
    const reuse = [...failedNonces.entries()].flatMap(([kind, list]) =>
      list.slice(0, 40).map((entry) => ({ kind, ...entry })),
    );
    const refused: string[] = [];
    const pipeline = await Pipeline.open(service().port);
    try {
      await pipeline.run(reuse, async (client, { kind, kid, nonce }) => {
        const envelope = signEnvelope('system.ping', {}, TEST_KEYS[kid], {
          kid,
          nonce,
        });
        const reply = await client.request('system.ping', envelope);
        count('sent reuse of a failed nonce');
        if (reply.ok) accept(kid, nonce, envelope.ts);
        else refused.push(`${kind}: ${kid}/${nonce} -> ${reply.error?.code}`);
      });
    } finally {
      pipeline.close();
    }
    expect(refused.slice(0, 10)).toEqual([]);
    expect(
      new Set(reuse.map((entry) => entry.kind)).size,
    ).toBeGreaterThanOrEqual(10);

    // Whatever is in the table was accepted: no failed message ever reached it. Where the record
    // is the table, it also holds every accepted pair (the in-memory record writes only the
    // future-dated ones there, for its restarts).
    const rows = (await tableNonces(service().dataSource, databaseKind)) ?? [];
    const unexpected = rows.filter(
      (row) => !accepted.has(`${row.kid}\n${row.nonce}`),
    );
    expect(unexpected).toEqual([]);
    if (service().config.nonceRecord.kind === 'database') {
      // The periodic purge may meanwhile have dropped pairs whose ts plus the window has passed;
      // every other accepted pair must be there.
      const now = Date.now();
      const stored = new Set(rows.map((row) => `${row.kid}\n${row.nonce}`));
      const missing = [...acceptedUntil].filter(
        ([pair, until]) => until > now + 1_000 && !stored.has(pair),
      );
      expect(missing).toEqual([]);
      const live = [...acceptedUntil.values()].filter(
        (until) => until > now + 1_000,
      );
      report(
        `nonces_usados: ${rows.length} rows, ${accepted.size} messages accepted (${live.length} still inside their window)`,
      );
    } else {
      const held = service().app.get(NonceRecord).memoryHeld;
      expect(held).toBeGreaterThanOrEqual(accepted.size - rows.length);
      report(
        `nonce record in memory: ${held} pairs held, ${rows.length} future-dated rows in nonces_usados, ${accepted.size} messages accepted`,
      );
    }
  });

  it('should read garbage frames as the framing says: close on broken ones, deliver the rest', () => {
    // Straight into the service's socket class: the one that parses every production byte.
    const FramedSocket = framedSocketClass({
      maxMessageChars: MAX_FRAME,
      frameTimeoutMs: 60_000,
      idleTimeoutMs: 60_000,
    });
    const mismatches: string[] = [];
    fc.assert(
      fc.property(streamArb, ({ chunks, text }) => {
        const socket = new Socket();
        const delivered: unknown[] = [];
        socket.on('message', (message: unknown) => delivered.push(message));
        socket.on('error', () => undefined);
        new FramedSocket(socket);
        // A throw out of a 'data' listener would be an uncaught exception in the server.
        for (const chunk of chunks) {
          if (socket.destroyed) break;
          socket.emit('data', chunk);
        }
        count('parser stream');
        const verdict = readFrames(text, MAX_FRAME);
        const prefix = verdict.messages.slice(0, delivered.length);
        const ok =
          JSON.stringify(delivered) === JSON.stringify(prefix) &&
          (verdict.open ||
            (verdict.broken
              ? socket.destroyed
              : !socket.destroyed &&
                delivered.length === verdict.messages.length));
        if (!ok && mismatches.length < 10) {
          mismatches.push(
            `${JSON.stringify(text).slice(0, 300)}: destroyed ${socket.destroyed}, delivered ${delivered.length}, expected ${JSON.stringify(verdict).slice(0, 200)}`,
          );
        }
        socket.destroy();
        return ok;
      }),
      { seed: SEED, numRuns: COUNTS.parserStreams, endOnFailure: true },
    );
    expect(mismatches).toEqual([]);
  });

  it('should close connections that send garbage over TCP, answer validly, and keep serving', async () => {
    const streams = fc.sample(streamArb, {
      seed: SEED,
      numRuns: COUNTS.tcpStreams,
    });
    const failures: string[] = [];
    const concurrency = 16;
    let next = 0;
    const settle = (promise: Promise<unknown>, ms: number) =>
      Promise.race([
        promise.then(() => true),
        new Promise<boolean>((resolve) =>
          setTimeout(() => resolve(false), ms).unref(),
        ),
      ]);
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (next < streams.length) {
          const { chunks, text } = streams[next++];
          const verdict = readFrames(text, MAX_FRAME);
          const connection = await GarbageConnection.open(service().port);
          for (const chunk of chunks) {
            connection.socket.write(chunk);
            // Separate reads on the server side, as a slow or hostile peer would cause them.
            await new Promise((resolve) => setImmediate(resolve));
          }
          count('tcp garbage connection');
          let closed = true;
          if (verdict.broken && !verdict.open) {
            closed = await settle(connection.closed, 5_000);
          }
          connection.socket.destroy();
          await connection.closed;
          const bad = [...connection.replyErrors];
          if (!closed) bad.push('connection left open after a broken frame');
          for (const reply of connection.replies) {
            const request = verdict.messages.find(
              (message) => message.id === reply.id,
            );
            if (!request && verdict.refusedIds.includes(reply.id as never)) {
              const refusal = reply.err as WireReply | undefined;
              if (
                refusal?.mac !== null ||
                refusal.error?.code !== 'BAD_REQUEST' ||
                JSON.stringify(refusal.error.fields) !==
                  '[{"field":"pattern","problem":"must be a string"}]'
              )
                bad.push(
                  `pattern refusal ${JSON.stringify(reply).slice(0, 200)}`,
                );
              continue;
            }
            if (!request) {
              bad.push(
                `reply to nothing sent: ${JSON.stringify(reply).slice(0, 200)}`,
              );
              continue;
            }
            const pattern = request.pattern as string;
            const body = (reply.err ?? reply.response) as never;
            const expectation = expectGuard(
              pattern,
              request.data,
              Date.now(),
              accepted,
            );
            bad.push(
              ...replyProblems(body, pattern, request.data, expectation),
            );
          }
          if (bad.length > 0 && failures.length < 10) {
            failures.push(
              `${JSON.stringify(text).slice(0, 300)}: ${bad.join('; ')}`,
            );
          }
        }
      }),
    );
    expect(failures).toEqual([]);
  });

  // JSON allows a lone surrogate ("\ud800") in a string, RFC 8785 does not: such a payload has no
  // canonical form, so no MAC can match it. Were the canonicalizer's exception to escape the
  // guard, anyone could get INTERNAL, with a stack in the log, without a key: it is BAD_REQUEST
  // at the form step, before the key is looked up.
  it('should refuse a payload with a lone surrogate as BAD_REQUEST, not INTERNAL', async () => {
    const raw = await RawClient.connect(service().port);
    try {
      for (const payload of [
        '{"x":"\\ud800"}',
        '{"\\udfff":1}',
        '{"a":["ok","\\ud83d"]}',
      ]) {
        const envelope = signEnvelope('system.ping', {}, TEST_KEYS.default);
        const text = JSON.stringify({
          pattern: 'system.ping',
          id: 'lone',
          data: envelope,
        }).replace('"payload":{}', `"payload":${payload}`);
        const reply = new Promise<string>((resolve) => {
          let buffer = '';
          const onData = (chunk: Buffer) => {
            buffer += chunk.toString();
            if (buffer.includes('"isDisposed":true')) {
              raw.socket.off('data', onData);
              resolve(buffer);
            }
          };
          raw.socket.on('data', onData);
        });
        raw.writeRaw(`${text.length}#${text}`);
        const body = JSON.parse((await reply).replace(/^\d+#/, ''));
        expect(body.err?.error?.code).toBe('BAD_REQUEST');
        // The form step, before the MAC: unsigned.
        expect(body.err?.mac).toBeNull();
      }
    } finally {
      raw.close();
    }
  });

  // An unknown envelope field whose name is a lone surrogate: a reply naming it could not even be
  // serialized canonically. The refusal names no field of the peer's ("envelope"), and is sent.
  it('should answer an envelope field named with a lone surrogate', async () => {
    const connection = await GarbageConnection.open(service().port);
    try {
      const envelope = signEnvelope('system.ping', {}, TEST_KEYS.default);
      const text = JSON.stringify({
        pattern: 'system.ping',
        id: 'lone-field',
        data: envelope,
      }).replace('"v":2', '"\\ud800":true,"v":2');
      connection.socket.write(`${text.length}#${text}`);
      await waitFor('a reply', () => connection.replies.length > 0, {
        timeoutMs: REPLY_TIMEOUT_MS,
        intervalMs: 5,
      });
      const reply = connection.replies[0]?.err as never;
      expect(
        replyProblems(
          reply,
          'system.ping',
          JSON.parse(text).data,
          expectGuard(
            'system.ping',
            JSON.parse(text).data,
            Date.now(),
            accepted,
          ),
        ),
      ).toEqual([]);
    } finally {
      connection.socket.destroy();
    }
  });

  it('should refuse a payload nested 30 000 deep without an internal error', async () => {
    // Deeper than any recursive JSON walk on a default stack, and still under the frame limit.
    const depth = 30_000;
    const envelope = signEnvelope('system.ping', {}, TEST_KEYS.default);
    const text = JSON.stringify({
      pattern: 'system.ping',
      id: 'deep',
      data: envelope,
    }).replace(
      '"payload":{}',
      `"payload":{"a":${'['.repeat(depth)}${']'.repeat(depth)}}`,
    );
    expect(text.length).toBeLessThan(MAX_FRAME);
    const connection = await GarbageConnection.open(service().port);
    try {
      connection.socket.write(`${text.length}#${text}`);
      await waitFor('a reply', () => connection.replies.length > 0, {
        timeoutMs: REPLY_TIMEOUT_MS,
        intervalMs: 5,
      });
      const reply = connection.replies[0]?.err as Record<string, any>;
      expect(reply?.error?.code).toBe('MAC_INVALID');
      expect(reply?.mac).toBeNull();
    } finally {
      connection.socket.destroy();
    }
  });

  it('should still answer a signed ping, with no crash, no unhandled rejection, no polluted prototype', async () => {
    const raw = await RawClient.connect(service().port);
    try {
      const envelope = signEnvelope('system.ping', {}, TEST_KEYS.default);
      const reply = await raw.request('system.ping', envelope);
      expect(reply.ok).toBe(true);
      expect(signedFor(reply, 'system.ping', envelope)).toBe(true);
    } finally {
      raw.close();
    }
    expect(crashes).toEqual([]);
    expect(Object.getOwnPropertyNames(Object.prototype).sort()).toEqual(
      prototypeKeys,
    );
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();

    const total = Object.entries(counts)
      .filter(
        ([what]) =>
          what.startsWith('sent') || !/^(verdict|skipped|known)/.test(what),
      )
      .reduce((sum, [, n]) => sum + n, 0);
    report(
      `fuzz (${databaseKind}, seed ${SEED}): ${total} inputs, accepted ${accepted.size}\n${JSON.stringify(counts, null, 1)}`,
    );
    expect(total).toBeGreaterThanOrEqual(100_000);
  });
});
