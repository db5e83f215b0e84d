import bcrypt from 'bcrypt';
import { performance } from 'node:perf_hooks';
import { PasswordHasher } from '../../src/auth/password-hasher';
import { codeOf } from '../support/failure';
import { e2eTransport, startTestApp, type TestApp } from '../support/test-app';
import {
  createTestDatabase,
  databaseKind,
  type TestDatabase,
} from '../support/test-database';

const PASSWORD = 'correct horse';

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2
    ? sorted[middle]
    : (sorted[middle - 1] + sorted[middle]) / 2;
}

function costOf(hash: string): number {
  return Number(/^\$2[aby]\$(\d\d)\$/.exec(hash)![1]);
}

describe(`a change of PAI_BCRYPT_COST over ${e2eTransport} (${databaseKind})`, () => {
  let database: TestDatabase;
  let service: TestApp | undefined;

  beforeEach(async () => {
    database = await createTestDatabase();
  });

  afterEach(async () => {
    await service?.close();
    service = undefined;
    await database.drop();
  });

  /** Registers the users on an instance at `cost`, then stops it: their hashes keep that cost. */
  async function registerAt(cost: number, usernames: string[]): Promise<void> {
    const old = await startTestApp(database, { bcryptCost: cost });
    try {
      const client = old.client();
      for (const username of usernames) {
        await client.send('auth.register', { username, password: PASSWORD });
      }
    } finally {
      await old.close();
    }
  }

  async function storedHash(username: string): Promise<string> {
    const [row] = await service!.dataSource.query(
      'SELECT clave FROM usuarios WHERE nombre_usuario_normalizado = ?',
      [username],
    );
    return row.clave;
  }

  it('should take as long to refuse a wrong password at the old cost as an unknown user', async () => {
    // Each user is tried once, far from the throttle's lock; the first two pairs warm up.
    const pairs = 24;
    const warmUp = 2;
    const existing = Array.from({ length: pairs }, (_, i) => `known-${i}`);
    await registerAt(10, existing);
    service = await startTestApp(database, { bcryptCost: 11 });
    const client = service.client();
    const timed = async (username: string): Promise<number> => {
      const start = performance.now();
      const code = await codeOf(
        client.send('auth.login', { username, password: 'wrong horse' }),
      );
      const elapsed = performance.now() - start;
      expect(code).toBe('INVALID_CREDENTIALS');
      return elapsed;
    };

    const existingMs: number[] = [];
    const unknownMs: number[] = [];
    // Interleaved, and in alternating order, so that load from elsewhere on the machine falls on
    // both kinds alike.
    for (let i = 0; i < pairs; i += 1) {
      const unknown = `unknown-${i}`;
      let known: number;
      let absent: number;
      if (i % 2 === 0) {
        known = await timed(existing[i]);
        absent = await timed(unknown);
      } else {
        absent = await timed(unknown);
        known = await timed(existing[i]);
      }
      if (i < warmUp) continue;
      existingMs.push(known);
      unknownMs.push(absent);
    }

    // Each pair ran back to back, so the median of the pairs' own ratios discounts load that
    // came and went during the test. Before a cost change is handled, the ratio is 0.26-0.49.
    const ratios = existingMs.map((known, i) => known / unknownMs[i]);
    const figures = {
      existingMs: Math.round(median(existingMs)),
      unknownMs: Math.round(median(unknownMs)),
      ratio: Number(median(ratios).toFixed(2)),
    };
    // The figures show in the diff when this fails.
    expect({
      ...figures,
      alike: figures.ratio >= 0.75 && figures.ratio <= 1.33,
    }).toEqual({ ...figures, alike: true });
  }, 120_000);

  it('should re-hash a password at the configured cost at its next login, and log in with it after', async () => {
    await registerAt(10, ['alice']);
    service = await startTestApp(database, { bcryptCost: 11 });
    const client = service.client();
    expect(costOf(await storedHash('alice'))).toBe(10);

    const first = await client.send('auth.login', {
      username: 'alice',
      password: PASSWORD,
    });
    await expect(
      client.send('users.me', { token: first.token }),
    ).resolves.toHaveProperty('username', 'alice');
    const upgraded = await storedHash('alice');
    expect(costOf(upgraded)).toBe(11);

    await expect(
      client.send('auth.login', { username: 'alice', password: PASSWORD }),
    ).resolves.toHaveProperty('token');
    // Already at the configured cost: not hashed again.
    expect(await storedHash('alice')).toBe(upgraded);
    expect(
      await codeOf(
        client.send('auth.login', {
          username: 'alice',
          password: 'wrong horse',
        }),
      ),
    ).toBe('INVALID_CREDENTIALS');
  });

  it('should not re-hash a password while its login fails', async () => {
    await registerAt(10, ['alice']);
    service = await startTestApp(database, { bcryptCost: 11 });
    const before = await storedHash('alice');

    expect(
      await codeOf(
        service
          .client()
          .send('auth.login', { username: 'alice', password: 'wrong horse' }),
      ),
    ).toBe('INVALID_CREDENTIALS');

    expect(await storedHash('alice')).toBe(before);
  });

  it('should not overwrite a hash written by someone else while the login re-hashed', async () => {
    await registerAt(10, ['alice']);
    service = await startTestApp(database, { bcryptCost: 11 });
    const theirs = await service.app.get(PasswordHasher).hash('a newer one');
    // Between the check of the old hash and the login's commit, another writer (a concurrent
    // login, or a change of password) stores a newer hash. On every instance: over NATS, either
    // may serve the login.
    for (const app of service.apps) {
      const hasher = app.get(PasswordHasher);
      const hash = hasher.hash.bind(hasher);
      jest.spyOn(hasher, 'hash').mockImplementationOnce(async (password) => {
        const ours = await hash(password);
        await service!.dataSource.query(
          'UPDATE usuarios SET clave = ? WHERE nombre_usuario_normalizado = ?',
          [theirs, 'alice'],
        );
        return ours;
      });
    }

    await expect(
      service
        .client()
        .send('auth.login', { username: 'alice', password: PASSWORD }),
    ).resolves.toHaveProperty('token');

    expect(await storedHash('alice')).toBe(theirs);
  });

  it('should make unknown users cost as much as the stored hashes of a lowered cost, from the first request', async () => {
    await registerAt(11, ['alice']);
    service = await startTestApp(database, { bcryptCost: 10 });
    const client = service.client();
    const salt = jest.spyOn(bcrypt, 'genSaltSync');

    // Before any stored hash was checked: the cost came from the database at start.
    expect(
      await codeOf(
        client.send('auth.login', { username: 'nobody', password: PASSWORD }),
      ),
    ).toBe('INVALID_CREDENTIALS');
    expect(salt.mock.calls).toEqual([[11]]);

    await expect(
      client.send('auth.login', { username: 'alice', password: PASSWORD }),
    ).resolves.toHaveProperty('token');
    expect(costOf(await storedHash('alice'))).toBe(10);
  });
});
