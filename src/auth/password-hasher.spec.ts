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

  it('should refuse an unknown user after one bcrypt of the configured cost', async () => {
    const compare = jest.spyOn(bcrypt, 'compare');
    const hash = jest.spyOn(bcrypt, 'hash');
    const salt = jest.spyOn(bcrypt, 'genSaltSync');

    await expect(hasher.verify(password, undefined)).resolves.toBe(false);

    expect(compare).not.toHaveBeenCalled();
    expect(hash).toHaveBeenCalledTimes(1);
    expect(salt.mock.calls).toEqual([[10]]);
  });

  it('should refuse an unknown user whatever bcrypt answers', async () => {
    jest
      .spyOn(bcrypt, 'compare')
      .mockImplementation(() => Promise.resolve(true) as never);

    await expect(hasher.verify(password, undefined)).resolves.toBe(false);
  });

  it('should refuse a stored value that is not a bcrypt hash, at the cost of an unknown user', async () => {
    const compare = jest.spyOn(bcrypt, 'compare');
    const salt = jest.spyOn(bcrypt, 'genSaltSync');

    await expect(hasher.verify(password, 'not a hash')).resolves.toBe(false);

    expect(compare).not.toHaveBeenCalled();
    expect(salt.mock.calls).toEqual([[10]]);
  });

  describe('a stored hash of another cost than the configured one', () => {
    const costlier = new PasswordHasher({
      bcryptCost: 12,
      passwordPepper: pepper,
    } as AppConfig);

    it('should verify it and ask for a re-hash', async () => {
      await expect(costlier.verify(password, storedHash)).resolves.toBe(true);
      expect(costlier.needsRehash(storedHash)).toBe(true);
      expect(hasher.needsRehash(storedHash)).toBe(false);
      expect(costlier.needsRehash(await costlier.hash(password))).toBe(false);
    });

    it('should refuse a wrong password after spending the difference to the configured cost', async () => {
      const compare = jest.spyOn(bcrypt, 'compare');
      const salt = jest.spyOn(bcrypt, 'genSaltSync');

      await expect(costlier.verify('wrong horse', storedHash)).resolves.toBe(
        false,
      );

      // 2^10 (the check) + 2^10 + 2^11 = 2^12, as for an unknown user.
      expect(compare).toHaveBeenCalledTimes(1);
      expect(salt.mock.calls).toEqual([[10], [11]]);
    });

    it('should spend nothing more on the right password', async () => {
      const salt = jest.spyOn(bcrypt, 'genSaltSync');

      await expect(costlier.verify(password, storedHash)).resolves.toBe(true);

      expect(salt).not.toHaveBeenCalled();
    });

    it('should make every refusal cost as much as the costliest stored hash', async () => {
      const lowered = hasherWith(pepper);
      const salt = jest.spyOn(bcrypt, 'genSaltSync');

      lowered.expectStoredCost(11);
      lowered.expectStoredCost(10);
      await expect(lowered.verify(password, undefined)).resolves.toBe(false);
      await expect(lowered.verify('wrong horse', storedHash)).resolves.toBe(
        false,
      );

      expect(salt.mock.calls).toEqual([[11], [10]]);
    });

    it('should raise the refusal cost when it meets a costlier stored hash', async () => {
      const lowered = hasherWith(pepper);
      const costlierHash = await costlier.hash(password);
      const salt = jest.spyOn(bcrypt, 'genSaltSync');

      await expect(lowered.verify('wrong horse', costlierHash)).resolves.toBe(
        false,
      );
      await expect(lowered.verify(password, undefined)).resolves.toBe(false);

      expect(salt.mock.calls).toEqual([[12]]);
    });
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
