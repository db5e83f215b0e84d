import bcrypt from 'bcrypt';
import { PasswordHasher } from '../../src/auth/password-hasher';
import { registerAtCost, TEST_PASSWORD } from '../support/accounts';
import { codeOf } from '../support/failure';
import { e2eTransport, type TestApp } from '../support/test-app';
import { databaseKind } from '../support/test-database';
import { useTestDatabase } from '../support/use-test-app';

function costOf(hash: string): number {
  return Number(/^\$2[aby]\$(\d\d)\$/.exec(hash)![1]);
}

describe(`a change of PAI_BCRYPT_COST over ${e2eTransport} (${databaseKind})`, () => {
  const database = useTestDatabase();
  let service: TestApp;

  /** Registers the users on an instance at `cost`, then stops it: their hashes keep that cost. */
  const registerAt = (cost: number, usernames: string[]) =>
    registerAtCost(database, cost, usernames);

  async function storedHash(username: string): Promise<string> {
    const [row] = await service.dataSource.query(
      'SELECT clave FROM usuarios WHERE nombre_usuario_normalizado = ?',
      [username],
    );
    return row.clave;
  }

  it('should re-hash a password at the configured cost at its next login, and log in with it after', async () => {
    await registerAt(10, ['alice']);
    service = await database.start({ bcryptCost: 11 });
    const client = service.client();
    expect(costOf(await storedHash('alice'))).toBe(10);

    const first = await client.send('auth.login', {
      username: 'alice',
      password: TEST_PASSWORD,
    });
    await expect(
      client.send('users.me', { token: first.token }),
    ).resolves.toHaveProperty('username', 'alice');
    const upgraded = await storedHash('alice');
    expect(costOf(upgraded)).toBe(11);

    await expect(
      client.send('auth.login', { username: 'alice', password: TEST_PASSWORD }),
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
    service = await database.start({ bcryptCost: 11 });
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
    service = await database.start({ bcryptCost: 11 });
    const theirs = await service.app.get(PasswordHasher).hash('a newer one');
    // Between the check of the old hash and the login's commit, another writer (a concurrent
    // login, or a change of password) stores a newer hash. On every instance: over NATS, either
    // may serve the login.
    for (const app of service.apps) {
      const hasher = app.get(PasswordHasher);
      const hash = hasher.hash.bind(hasher);
      jest.spyOn(hasher, 'hash').mockImplementationOnce(async (password) => {
        const ours = await hash(password);
        await service.dataSource.query(
          'UPDATE usuarios SET clave = ? WHERE nombre_usuario_normalizado = ?',
          [theirs, 'alice'],
        );
        return ours;
      });
    }

    await expect(
      service
        .client()
        .send('auth.login', { username: 'alice', password: TEST_PASSWORD }),
    ).resolves.toHaveProperty('token');

    expect(await storedHash('alice')).toBe(theirs);
  });

  it('should make unknown users cost as much as the stored hashes of a lowered cost, from the first request', async () => {
    await registerAt(11, ['alice']);
    service = await database.start({ bcryptCost: 10 });
    const client = service.client();
    const salt = jest.spyOn(bcrypt, 'genSaltSync');

    // Before any stored hash was checked: the cost came from the database at start.
    expect(
      await codeOf(
        client.send('auth.login', {
          username: 'nobody',
          password: TEST_PASSWORD,
        }),
      ),
    ).toBe('INVALID_CREDENTIALS');
    expect(salt.mock.calls).toEqual([[11]]);

    await expect(
      client.send('auth.login', { username: 'alice', password: TEST_PASSWORD }),
    ).resolves.toHaveProperty('token');
    expect(costOf(await storedHash('alice'))).toBe(10);
  });
});
