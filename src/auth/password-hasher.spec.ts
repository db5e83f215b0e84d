import bcrypt from 'bcrypt';
import { randomBytes } from 'node:crypto';
import type { AppConfig } from '../config/config';
import { PasswordHasher } from './password-hasher';

function hasherWith(passwordPepper: Buffer): PasswordHasher {
  return new PasswordHasher({ bcryptCost: 10, passwordPepper } as AppConfig);
}

describe(PasswordHasher.name, () => {
  const pepper = randomBytes(32);
  const hasher = hasherWith(pepper);
  const password = 'correct horse battery staple';
  let storedHash: string;

  beforeAll(async () => {
    storedHash = await hasher.hash(password);
  });

  afterEach(() => {
    jest.restoreAllMocks();
  });

  it('should store a bcrypt hash of the configured cost, not the password', () => {
    expect(storedHash).toMatch(/^\$2[aby]\$10\$/);
    expect(storedHash).not.toContain(password);
  });

  it('should verify the password it hashed', async () => {
    await expect(hasher.verify(password, storedHash)).resolves.toBe(true);
  });

  it('should refuse a wrong password', async () => {
    await expect(hasher.verify(`${password}!`, storedHash)).resolves.toBe(
      false,
    );
  });

  it('should tell apart long passwords that differ only in their last character', async () => {
    const first = 'a'.repeat(99) + 'b';
    const second = 'a'.repeat(99) + 'c';
    expect(first).toHaveLength(100);
    // The premise: bcrypt alone reads 72 bytes and cannot tell these two apart.
    const plainBcrypt = await bcrypt.hash(first, 10);
    await expect(bcrypt.compare(second, plainBcrypt)).resolves.toBe(true);

    const firstHash = await hasher.hash(first);

    await expect(hasher.verify(first, firstHash)).resolves.toBe(true);
    await expect(hasher.verify(second, firstHash)).resolves.toBe(false);
  });

  it('should count the characters after a NUL', async () => {
    const withNul = 'correct\0horse battery';
    const prefix = 'correct';
    const hashWithNul = await hasher.hash(withNul);

    await expect(hasher.verify(withNul, hashWithNul)).resolves.toBe(true);
    await expect(hasher.verify(prefix, hashWithNul)).resolves.toBe(false);
    await expect(hasher.verify('correct\0other', hashWithNul)).resolves.toBe(
      false,
    );
  });

  it('should refuse an unknown user and still run bcrypt against a hash of the same cost', async () => {
    const compare = jest.spyOn(bcrypt, 'compare');

    await expect(hasher.verify(password, undefined)).resolves.toBe(false);

    expect(compare).toHaveBeenCalledTimes(1);
    const [, hashUsed] = compare.mock.calls[0];
    expect(hashUsed).toMatch(/^\$2[aby]\$10\$/);
  });

  it('should refuse an unknown user even if bcrypt were to match the dummy hash', async () => {
    jest
      .spyOn(bcrypt, 'compare')
      .mockImplementation(() => Promise.resolve(true) as never);

    await expect(hasher.verify(password, undefined)).resolves.toBe(false);
  });

  it('should run bcrypt once per verification of a known user', async () => {
    const compare = jest.spyOn(bcrypt, 'compare');

    await expect(hasher.verify(password, storedHash)).resolves.toBe(true);

    expect(compare).toHaveBeenCalledTimes(1);
    expect(compare.mock.calls[0][1]).toBe(storedHash);
    // bcrypt sees the pre-hash, never the password itself.
    expect(compare.mock.calls[0][0]).not.toBe(password);
  });

  it('should not verify a hash made with another pepper', async () => {
    const otherHasher = hasherWith(randomBytes(32));

    await expect(otherHasher.verify(password, storedHash)).resolves.toBe(false);
  });
});
