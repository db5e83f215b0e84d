import {
  ClientErrorCode,
  PaiClientError,
} from '@pai/client/client/pai-client.error';
import type { PaiClient } from '@pai/client/client/pai-client';
import { SessionsService } from '../../src/sessions/sessions.service';
import { codeOf } from '../support/failure';
import { e2eTransport } from '../support/test-app';
import { databaseKind } from '../support/test-database';
import { useTestApp } from '../support/use-test-app';

describe(`auth over ${e2eTransport} (${databaseKind})`, () => {
  const service = useTestApp();
  let client: PaiClient;

  beforeEach(() => {
    client = service().client();
  });

  it('should register a user and return its public fields only', async () => {
    const reply = await client.send('auth.register', {
      username: 'Alice',
      password: 'correct horse',
    });
    expect(reply).toEqual({
      userId: expect.any(String),
      username: 'Alice',
      createdAt: expect.any(String),
    });
    expect(new Date(reply.createdAt).toISOString()).toBe(reply.createdAt);
    const [row] = await service().dataSource.query(
      'SELECT clave FROM usuarios',
    );
    expect(row.clave).toMatch(/^\$2[aby]\$10\$/);
    expect(row.clave).not.toContain('correct horse');
  });

  it('should refuse a username taken in any letter case with USERNAME_TAKEN', async () => {
    await client.send('auth.register', {
      username: 'Alice',
      password: 'correct horse',
    });
    expect(
      await codeOf(
        client.send('auth.register', {
          username: 'aLICE',
          password: 'other password',
        }),
      ),
    ).toBe('USERNAME_TAKEN');
  });

  it('should let exactly one of many concurrent registrations of one name succeed', async () => {
    const attempts = await Promise.allSettled(
      Array.from({ length: 8 }, (_, i) =>
        client.send('auth.register', {
          username: i % 2 ? 'Racer' : 'racer',
          password: `password-${i}`,
        }),
      ),
    );
    const codes = attempts.map((attempt): string =>
      attempt.status === 'fulfilled'
        ? 'OK'
        : (attempt.reason as PaiClientError).code,
    );
    expect(codes.filter((code) => code === 'OK')).toHaveLength(1);
    expect(codes.filter((code) => code === 'USERNAME_TAKEN')).toHaveLength(7);
    const rows: unknown[] = await service().dataSource.query(
      'SELECT id FROM usuarios',
    );
    expect(rows).toHaveLength(1);
  });

  it('should refuse invalid usernames and passwords with BAD_REQUEST and create nothing', async () => {
    const bad = [
      { username: 'al', password: 'correct horse' },
      { username: 'al ice', password: 'correct horse' },
      { username: 'alice', password: 'short' },
      { username: 'alice', password: 'nul\u0000inside' },
      { username: 'alice', password: 'x'.repeat(129) },
    ];
    for (const payload of bad) {
      expect(await codeOf(client.send('auth.register', payload))).toBe(
        'BAD_REQUEST',
      );
    }
    const wrongType = client.send('auth.register', {
      username: 'alice',
      password: 12345678,
    } as never);
    expect(await codeOf(wrongType)).toBe('BAD_REQUEST');
    const rows: unknown[] = await service().dataSource.query(
      'SELECT id FROM usuarios',
    );
    expect(rows).toHaveLength(0);
  });

  it('should log in with the password and issue an expiring opaque token', async () => {
    const user = await client.send('auth.register', {
      username: 'alice',
      password: 'correct horse',
    });
    const login = await client.send('auth.login', {
      username: 'ALICE',
      password: 'correct horse',
    });
    expect(login.userId).toBe(user.userId);
    expect(login.token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const ttl = new Date(login.expiresAt).getTime() - Date.now();
    expect(ttl).toBeGreaterThan(3_500_000);
    expect(ttl).toBeLessThanOrEqual(3_600_000);
    const [row] = await service().dataSource.query(
      'SELECT token_hash FROM sesiones',
    );
    expect(row.token_hash).not.toContain(login.token);
  });

  it('should answer an unknown user and a wrong password alike', async () => {
    await client.send('auth.register', {
      username: 'alice',
      password: 'correct horse',
    });
    const unknown = await client
      .send('auth.login', { username: 'nobody', password: 'correct horse' })
      .catch((e) => e);
    const wrong = await client
      .send('auth.login', { username: 'alice', password: 'wrong horse' })
      .catch((e) => e);
    expect(unknown).toBeInstanceOf(PaiClientError);
    expect(unknown.code).toBe('INVALID_CREDENTIALS');
    expect(wrong.code).toBe('INVALID_CREDENTIALS');
    expect(unknown.message).toBe(wrong.message);
    expect(unknown.details).toEqual(wrong.details);
  });

  it('should make every character of a 100-character password count', async () => {
    const password = `${'p'.repeat(99)}A`;
    await client.send('auth.register', { username: 'longpass', password });
    const almost = `${'p'.repeat(99)}B`;
    expect(
      await codeOf(
        client.send('auth.login', { username: 'longpass', password: almost }),
      ),
    ).toBe('INVALID_CREDENTIALS');
    await expect(
      client.send('auth.login', { username: 'longpass', password }),
    ).resolves.toHaveProperty('token');
  });

  it('should rate-limit a username after 5 consecutive failures, without checking the password', async () => {
    await client.send('auth.register', {
      username: 'alice',
      password: 'correct horse',
    });
    for (let i = 0; i < 5; i += 1) {
      expect(
        await codeOf(
          client.send('auth.login', {
            username: 'alice',
            password: `wrong-${i}-pass`,
          }),
        ),
      ).toBe('INVALID_CREDENTIALS');
    }
    const limited = await client
      .send('auth.login', { username: 'alice', password: 'correct horse' })
      .catch((e) => e);
    expect(limited.code).toBe('RATE_LIMITED');
    expect(limited.details.retryAfterMs).toBeGreaterThan(0);
    expect(limited.details.retryAfterMs).toBeLessThanOrEqual(1_000);

    // Once the delay has passed, a 6th failure locks for longer than the 5th did.
    service().clock.advance(1_001);
    expect(
      await codeOf(
        client.send('auth.login', {
          username: 'alice',
          password: 'wrong-again',
        }),
      ),
    ).toBe('INVALID_CREDENTIALS');
    const longer = await client
      .send('auth.login', { username: 'alice', password: 'correct horse' })
      .catch((e) => e);
    expect(longer.code).toBe('RATE_LIMITED');
    expect(longer.details.retryAfterMs).toBeGreaterThan(1_000);

    service().clock.advance(2_001);
    await expect(
      client.send('auth.login', {
        username: 'alice',
        password: 'correct horse',
      }),
    ).resolves.toHaveProperty('token');
  });

  it('should throttle unknown usernames too, so throttling does not reveal which exist', async () => {
    for (let i = 0; i < 5; i += 1) {
      expect(
        await codeOf(
          client.send('auth.login', {
            username: 'ghost',
            password: 'whatever-pass',
          }),
        ),
      ).toBe('INVALID_CREDENTIALS');
    }
    expect(
      await codeOf(
        client.send('auth.login', {
          username: 'ghost',
          password: 'whatever-pass',
        }),
      ),
    ).toBe('RATE_LIMITED');
  });

  it('should reset the failure count on a successful login', async () => {
    await client.send('auth.register', {
      username: 'alice',
      password: 'correct horse',
    });
    const fail = () =>
      client.send('auth.login', { username: 'alice', password: 'wrong horse' });
    for (let i = 0; i < 4; i += 1)
      expect(await codeOf(fail())).toBe('INVALID_CREDENTIALS');
    await client.send('auth.login', {
      username: 'alice',
      password: 'correct horse',
    });
    for (let i = 0; i < 4; i += 1)
      expect(await codeOf(fail())).toBe('INVALID_CREDENTIALS');
    await expect(
      client.send('auth.login', {
        username: 'alice',
        password: 'correct horse',
      }),
    ).resolves.toHaveProperty('token');
  });

  it('should let at most 5 of a burst of parallel guesses reach the password check', async () => {
    await client.send('auth.register', {
      username: 'alice',
      password: 'correct horse',
    });
    const codes = await Promise.all(
      Array.from({ length: 12 }, (_, i) =>
        codeOf(
          client.send('auth.login', {
            username: 'alice',
            password: `guess-${i}-x`,
          }),
        ),
      ),
    );
    expect(
      codes.filter((code) => code === 'INVALID_CREDENTIALS').length,
    ).toBeLessThanOrEqual(5);
    expect(
      codes.filter((code) => code === 'RATE_LIMITED').length,
    ).toBeGreaterThanOrEqual(7);
  });

  it('should revoke a session on logout', async () => {
    await client.send('auth.register', {
      username: 'alice',
      password: 'correct horse',
    });
    const { token } = await client.send('auth.login', {
      username: 'alice',
      password: 'correct horse',
    });
    await expect(client.send('users.me', { token })).resolves.toHaveProperty(
      'username',
      'alice',
    );
    await expect(client.send('auth.logout', { token })).resolves.toEqual({
      revoked: true,
    });
    expect(await codeOf(client.send('users.me', { token }))).toBe(
      'UNAUTHENTICATED',
    );
    expect(await codeOf(client.send('auth.logout', { token }))).toBe(
      'UNAUTHENTICATED',
    );
  });

  it('should refuse an expired session with UNAUTHENTICATED', async () => {
    await client.send('auth.register', {
      username: 'alice',
      password: 'correct horse',
    });
    const { token } = await client.send('auth.login', {
      username: 'alice',
      password: 'correct horse',
    });
    // Move the service's clock only: the client keeps signing with real time, inside the window.
    service().clock.advance(3_600_001);
    const offset = service().clock.offsetMs;
    const lagging = service().client({ now: () => Date.now() + offset });
    expect(await codeOf(lagging.send('users.me', { token }))).toBe(
      'UNAUTHENTICATED',
    );
  });

  it('should delete sessions once they have expired', async () => {
    await client.send('auth.register', {
      username: 'alice',
      password: 'correct horse',
    });
    await client.send('auth.login', {
      username: 'alice',
      password: 'correct horse',
    });
    const sessions = service().app.get(SessionsService);
    expect(await sessions.purgeExpired()).toBe(0);
    service().clock.advance(service().config.sessionTtlMs + 1);
    expect(await sessions.purgeExpired()).toBe(1);
    const rows: unknown[] = await service().dataSource.query(
      'SELECT id FROM sesiones',
    );
    expect(rows).toHaveLength(0);
  });

  it('should answer a malformed token with BAD_REQUEST and an unknown one with UNAUTHENTICATED', async () => {
    expect(await codeOf(client.send('users.me', { token: 'short' }))).toBe(
      'BAD_REQUEST',
    );
    expect(
      await codeOf(client.send('users.me', { token: 'A'.repeat(43) })),
    ).toBe('UNAUTHENTICATED');
  });

  it('should refuse a reply signed with a key the client does not hold', async () => {
    const impostor = service().client({
      secret: Buffer.alloc(32, 7),
      timeoutMs: 1_500,
    });
    // The service refuses the request (MAC_INVALID) unsigned: to the client an unverified reply
    // proves nothing, whatever it claims. Over NATS it is dropped and the wait runs out.
    expect(await codeOf(impostor.send('system.ping', {}))).toBe(
      e2eTransport === 'tcp'
        ? ClientErrorCode.REPLY_UNVERIFIED
        : ClientErrorCode.TIMEOUT,
    );
  });
});
