import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PaiClientError } from '../src/client/pai-client.error';
import { TEST_KEYS, startTestApp, type TestApp } from './support/test-app';
import {
  createTestDatabase,
  databaseKind,
  type TestDatabase,
} from './support/test-database';
import { RawClient, signEnvelope } from './support/raw-client';

/** A throwaway self-signed certificate for 127.0.0.1, made for this run only. */
function makeCertificate(): { cert: Buffer; key: Buffer } {
  const dir = mkdtempSync(join(tmpdir(), 'pai-tls-'));
  try {
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:P-256',
        '-nodes',
        '-keyout',
        join(dir, 'key.pem'),
        '-out',
        join(dir, 'cert.pem'),
        '-days',
        '1',
        '-subj',
        '/CN=127.0.0.1',
        '-addext',
        'subjectAltName=IP:127.0.0.1',
      ],
      { stdio: 'ignore' },
    );
    return {
      cert: readFileSync(join(dir, 'cert.pem')),
      key: readFileSync(join(dir, 'key.pem')),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe(`TLS (${databaseKind})`, () => {
  const tls = makeCertificate();
  let database: TestDatabase;
  let service: TestApp;

  beforeEach(async () => {
    database = await createTestDatabase();
    service = await startTestApp(database, { tls });
  });

  afterEach(async () => {
    await service.close();
    await database.drop();
  });

  it('should serve a client that trusts the certificate', async () => {
    const client = service.client({ tls: { ca: tls.cert } });
    await expect(client.send('system.ping', {})).resolves.toHaveProperty(
      'serverTime',
    );
  });

  it('should not serve plain TCP on a TLS port', async () => {
    const raw = await RawClient.connect(service.port);
    raw.writeFrame({
      pattern: 'system.ping',
      data: signEnvelope('system.ping', {}, TEST_KEYS.default),
      id: '1',
    });
    await raw.closed;
  });

  it('should be refused by a client that does not trust the certificate', async () => {
    const client = service.client({ tls: {}, timeoutMs: 2_000 });
    const error = await client.send('system.ping', {}).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PaiClientError);
    expect((error as PaiClientError).code).toBe('CONNECTION');
  });
});
