import { PaiClientError } from '@pai/client/client/pai-client.error';
import { makeCertificate } from '../support/certificate';
import { nestLog } from '../support/nest-log';
import { RawClient, signEnvelope } from '../support/raw-client';
import { TEST_KEYS, describeTcpOnly } from '../support/test-app';
import { databaseKind } from '../support/test-database';
import { useTestApp } from '../support/use-test-app';

const describeSuite = describeTcpOnly(
  "the service's own TLS; over NATS, TLS is the broker's (tls:// URLs)",
);

describeSuite(`TLS (${databaseKind})`, () => {
  const tls = makeCertificate();
  const service = useTestApp({ tcp: { tls } });

  it('should serve a client that trusts the certificate', async () => {
    const client = service().client({ tls: { ca: tls.cert } });
    await expect(client.send('system.ping', {})).resolves.toHaveProperty(
      'serverTime',
    );
  });

  it('should not serve plain TCP on a TLS port', async () => {
    const raw = await RawClient.connect(service().port);
    raw.writeFrame({
      pattern: 'system.ping',
      data: signEnvelope('system.ping', {}, TEST_KEYS.default),
      id: '1',
    });
    await raw.closed;
  });

  it('should be refused by a client that does not trust the certificate', async () => {
    const client = service().client({ tls: {}, timeoutMs: 2_000 });
    const error = await client.send('system.ping', {}).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PaiClientError);
    expect((error as PaiClientError).code).toBe('CONNECTION');
    // Nest's client logs the refused handshake.
    expect(nestLog.lines('error', 'ClientTCP').join('\n')).toContain(
      'DEPTH_ZERO_SELF_SIGNED_CERT',
    );
  });
});
