import { PaiClientError } from '../../src/client/pai-client.error';
import { makeCertificate } from '../support/certificate';
import {
  TEST_KEYS,
  startTestApp,
  type TestApp,
  describeTcpOnly,
} from '../support/test-app';
import {
  createTestDatabase,
  databaseKind,
  type TestDatabase,
} from '../support/test-database';
import { RawClient, signEnvelope } from '../support/raw-client';

const describeSuite = describeTcpOnly(
  "the service's own TLS; over NATS, TLS is the broker's (tls:// URLs)",
);

describeSuite(`TLS (${databaseKind})`, () => {
  const tls = makeCertificate();
  let database: TestDatabase;
  let service: TestApp;

  beforeEach(async () => {
    database = await createTestDatabase();
    service = await startTestApp(database, { tcp: { tls } });
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
