import { ExecutionContextHost } from '@nestjs/core/helpers/execution-context-host';
import { Test } from '@nestjs/testing';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { testConfig } from '../../test/support/config';
import { Clock } from '../common/clock';
import { APP_CONFIG } from '../config/config';
import { ReplySigner } from './reply-signer';
import { markVerified } from './verified-request';

interface ReplyVector {
  pattern: string;
  kid: string;
  requestNonce: string;
  requestMac: string;
  reply: { ts: number; mac: string } & Record<string, unknown>;
}

// Kept identical to the shared vectors by mac.spec.ts.
const vectors = JSON.parse(
  readFileSync(
    resolve(__dirname, '../../test/fixtures/protocol-vectors.json'),
    'utf8',
  ),
) as { keys: Record<string, string>; replies: ReplyVector[] };

const DEFAULT_KEY = Buffer.from(vectors.keys.default, 'base64');

/** The request's context as the guard leaves it once the vector's request MAC matched. */
function verifiedHost(vector: ReplyVector): ExecutionContextHost {
  const host = new ExecutionContextHost([
    { kid: vector.kid, nonce: vector.requestNonce, mac: vector.requestMac },
    { getPattern: () => vector.pattern },
  ]);
  host.setType('rpc');
  markVerified(host, {
    pattern: vector.pattern,
    kid: vector.kid,
    nonce: vector.requestNonce,
    mac: vector.requestMac,
    key: DEFAULT_KEY,
  });
  return host;
}

describe(ReplySigner.name, () => {
  it('should reproduce the success reply vectors exactly', async () => {
    let now = 0;
    const moduleRef = await Test.createTestingModule({
      providers: [
        ReplySigner,
        {
          provide: APP_CONFIG,
          useValue: testConfig({ macKeys: { default: DEFAULT_KEY } }),
        },
        { provide: Clock, useValue: { now: () => now } },
      ],
    }).compile();
    const signer = moduleRef.get(ReplySigner);

    for (const vector of vectors.replies.filter((r) => r.reply.ok === true)) {
      now = vector.reply.ts;
      const host = verifiedHost(vector);

      expect(signer.success(host, vector.reply.payload as object)).toEqual(
        vector.reply,
      );
    }
  });
});
