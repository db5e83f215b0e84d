import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CliError, CliErrorCode } from './exit-codes';
import { findDataDir, resolveMacKey } from './mac-key';

function configFailure(env: Record<string, string>): CliError {
  try {
    resolveMacKey(env);
  } catch (error) {
    if (error instanceof CliError && error.code === CliErrorCode.CONFIG) {
      return error;
    }
    throw error;
  }
  throw new Error('expected a CONFIG error');
}

describe(resolveMacKey.name, () => {
  const first = randomBytes(32);
  const second = randomBytes(32);
  let dataDir: string;

  beforeEach(() => {
    dataDir = mkdtempSync(join(tmpdir(), 'pai-key-'));
  });

  afterEach(() => {
    rmSync(dataDir, { recursive: true, force: true });
  });

  function writeDevSecrets(keys: string, mode = 0o600) {
    const file = join(dataDir, 'dev-secrets.json');
    writeFileSync(
      file,
      JSON.stringify({
        PAI_MAC_KEYS: keys,
        PAI_PASSWORD_PEPPER: randomBytes(32).toString('base64'),
        PAI_LEDGER_KEY: randomBytes(32).toString('base64'),
      }),
    );
    chmodSync(file, mode);
  }

  it('should use the first key of PAI_MAC_KEYS, before any development key', () => {
    writeDevSecrets(`dev:${second.toString('base64')}`);
    const key = resolveMacKey({
      PAI_MAC_KEYS: `k1:${first.toString('base64')},k2:${second.toString('base64')}`,
      PAI_DATA_DIR: dataDir,
    });
    expect(key.kid).toBe('k1');
    expect(key.secret.equals(first)).toBe(true);
  });

  it('should read the keys from the file PAI_MAC_KEYS_FILE names, as the service does', () => {
    const file = join(dataDir, 'mac-keys');
    writeFileSync(file, `k1:${first.toString('base64')}\n`);
    const key = resolveMacKey({ PAI_MAC_KEYS_FILE: file });
    expect(key.kid).toBe('k1');
    expect(key.secret.equals(first)).toBe(true);
    expect(
      configFailure({ PAI_MAC_KEYS_FILE: file, PAI_MAC_KEYS: 'k:x' }).message,
    ).toContain('not both');
    writeFileSync(file, 'k1:c2hvcnQ=');
    expect(configFailure({ PAI_MAC_KEYS_FILE: file }).message).toMatch(
      /^PAI_MAC_KEYS_FILE: /,
    );
  });

  it('should refuse a bad PAI_MAC_KEYS without echoing its secret', () => {
    const secret = 'c2hvcnQ=';
    const error = configFailure({ PAI_MAC_KEYS: `k1:${secret}` });
    expect(error.message).toMatch(/^PAI_MAC_KEYS: /);
    expect(error.message).not.toContain(secret);
  });

  it('should read the development key from PAI_DATA_DIR when PAI_MAC_KEYS is unset', () => {
    writeDevSecrets(`default:${first.toString('base64')}`);
    const key = resolveMacKey({ PAI_DATA_DIR: dataDir, PAI_MAC_KEYS: '' });
    expect(key.kid).toBe('default');
    expect(key.secret.equals(first)).toBe(true);
  });

  it('should not create the development secrets when they are missing', () => {
    const missing = join(dataDir, 'not-yet');
    const error = configFailure({ PAI_DATA_DIR: missing });
    expect(error.message).toContain(join(missing, 'dev-secrets.json'));
    expect(existsSync(missing)).toBe(false);
  });

  it('should refuse development secrets other users can read', () => {
    writeDevSecrets(`default:${first.toString('base64')}`, 0o644);
    expect(configFailure({ PAI_DATA_DIR: dataDir }).message).toContain(
      'readable by other users',
    );
  });
});

describe(findDataDir.name, () => {
  let root: string;
  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'pai-find-'));
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  it('should find the data folder with the development secrets in a folder above', () => {
    mkdirSync(join(root, 'data'));
    writeFileSync(join(root, 'data', 'dev-secrets.json'), '{}');
    const below = join(root, 'clients', 'python');
    mkdirSync(below, { recursive: true });
    expect(findDataDir(below)).toBe(join(root, 'data'));
    expect(findDataDir(root)).toBe(join(root, 'data'));
  });

  it('should fall back to ./data when no folder above has the secrets', () => {
    expect(findDataDir(root)).toBe(join(root, 'data'));
  });
});
