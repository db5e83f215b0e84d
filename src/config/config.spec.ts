import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { nkeys, type JwtAuth } from '@nats-io/transport-node';
import { loadConfig, type AppConfig } from './config';
import { ConfigError } from '@pai/client/config/config.error';
import { SQLITE_FILE_NAME } from './database-config';
import { DEV_SECRETS_FILE } from '@pai/client/config/mac-keys';
import { natsConnectionOptions } from '@pai/client/config/nats-servers';
import { type TcpTransport } from './transport-config';

type Env = Record<string, string | undefined>;

/** Runs loadConfig and returns the ConfigError it throws; fails the test when it does not throw one. */
function configErrorOf(env: Env): ConfigError {
  try {
    loadConfig(env);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return error as ConfigError;
  }
  throw new Error('loadConfig did not throw');
}

/** The TCP transport of a configuration; fails the test over NATS. */
function tcpOf(config: AppConfig): TcpTransport {
  if (config.transport.kind !== 'tcp') throw new Error('not TCP');
  return config.transport;
}

function secret(bytes = 32): string {
  return randomBytes(bytes).toString('base64');
}

describe(loadConfig.name, () => {
  let dataDir: string;
  let macKey: Buffer;
  let pepper: Buffer;
  /** A complete, valid environment: each test changes only the variable it is about. */
  let env: Env;

  beforeEach(() => {
    dataDir = mkdtempSync(join(tmpdir(), 'pai-config-'));
    macKey = randomBytes(32);
    pepper = randomBytes(32);
    env = {
      PAI_DATA_DIR: dataDir,
      PAI_MAC_KEYS: `default:${macKey.toString('base64')}`,
      PAI_PASSWORD_PEPPER: pepper.toString('base64'),
      PAI_LEDGER_KEY: randomBytes(32).toString('base64'),
    };
  });

  afterEach(() => {
    rmSync(dataDir, { recursive: true, force: true });
  });

  describe('defaults', () => {
    it('should use the documented defaults when only the secrets are set', () => {
      const config = loadConfig(env);

      expect(config.production).toBe(false);
      expect(config.transport).toEqual({
        kind: 'tcp',
        host: '127.0.0.1',
        port: 8080,
        tls: undefined,
        frameTimeoutMs: 5_000,
        idleTimeoutMs: 300_000,
        maxConnections: 1_000,
        maxConnectionsPerAddress: 100,
        maxUnverifiedInRow: 3,
        authTimeoutMs: 5_000,
      });
      expect(config.macWindowMs).toBe(300_000);
      expect(config.sessionTtlMs).toBe(3_600_000);
      expect(config.bcryptCost).toBe(12);
      expect(config.maxMessageBytes).toBe(65_536);
      expect(config.drainTimeoutMs).toBe(10_000);
      expect(config.databaseTimeoutMs).toBe(5_000);
      expect(config.dataDir).toBe(dataDir);
      expect(config.database).toEqual({
        type: 'sqlite',
        file: join(dataDir, SQLITE_FILE_NAME),
      });
    });

    it('should use the secrets from the environment without writing a file', () => {
      const config = loadConfig(env);

      expect([...config.macKeys.keys()]).toEqual(['default']);
      expect(config.macKeys.get('default')!.equals(macKey)).toBe(true);
      expect(config.passwordPepper.equals(pepper)).toBe(true);
      expect(readdirSync(dataDir)).toEqual([]);
    });

    it('should read valid values from the environment', () => {
      const config = loadConfig({
        ...env,
        PAI_HOST: '0.0.0.0',
        PAI_PORT: '9090',
        PAI_MAC_WINDOW_MS: '60000',
        PAI_SESSION_TTL_MS: '120000',
        PAI_BCRYPT_COST: '10',
        PAI_MAX_MESSAGE_BYTES: '4096',
        PAI_FRAME_TIMEOUT_MS: '250',
        PAI_IDLE_TIMEOUT_MS: '60000',
        PAI_MAX_CONNECTIONS: '64',
        PAI_DRAIN_TIMEOUT_MS: '0',
        PAI_DATABASE_TIMEOUT_MS: '2000',
        DATABASE_URL: 'mysql://u:p@db.example:3306/pai',
      });

      expect(config.transport).toMatchObject({
        host: '0.0.0.0',
        port: 9090,
        frameTimeoutMs: 250,
        idleTimeoutMs: 60_000,
        maxConnections: 64,
      });
      expect(config.macWindowMs).toBe(60_000);
      expect(config.sessionTtlMs).toBe(120_000);
      expect(config.bcryptCost).toBe(10);
      expect(config.maxMessageBytes).toBe(4096);
      expect(config.drainTimeoutMs).toBe(0);
      expect(config.databaseTimeoutMs).toBe(2_000);
      expect(config.database).toMatchObject({
        type: 'mysql',
        database: 'pai',
        poolSize: 10,
      });
      expect(config.nonceRecord).toEqual({ kind: 'database' });
    });

    it('should keep nonces in memory on SQLite unless told otherwise', () => {
      expect(loadConfig(env).nonceRecord).toEqual({ kind: 'memory' });
      expect(
        loadConfig({ ...env, PAI_NONCE_STORE: 'database' }).nonceRecord,
      ).toEqual({ kind: 'database' });
      expect(
        loadConfig({
          ...env,
          DATABASE_URL: 'mysql://u:p@db.example:3306/pai',
          PAI_NONCE_STORE: 'memory',
        }).nonceRecord,
      ).toEqual({ kind: 'memory' });
    });

    it('should take a Redis nonce record only with a redis:// URL, never echoing it', () => {
      const redis = loadConfig({
        ...env,
        PAI_NONCE_STORE: 'redis',
        PAI_REDIS_URL: 'redis://:s3cret@cache.example:6379/2',
      });
      expect(redis.nonceRecord).toEqual({
        kind: 'redis',
        url: 'redis://:s3cret@cache.example:6379/2',
        prefix: 'pai:',
      });
      expect(
        loadConfig({
          ...env,
          PAI_NONCE_STORE: 'redis',
          PAI_REDIS_URL: 'redis://cache.example',
          PAI_REDIS_PREFIX: '',
        }).nonceRecord,
      ).toMatchObject({ prefix: '' });
      expect(() => loadConfig({ ...env, PAI_NONCE_STORE: 'redis' })).toThrow(
        /PAI_REDIS_URL.*required when PAI_NONCE_STORE=redis/,
      );
      const wrong = () =>
        loadConfig({
          ...env,
          PAI_NONCE_STORE: 'redis',
          PAI_REDIS_URL: 'http://:s3cret@cache.example',
        });
      expect(wrong).toThrow(/PAI_REDIS_URL: must start with redis:\/\//);
      expect(wrong).not.toThrow(/s3cret/);
      expect(() =>
        loadConfig({
          ...env,
          PAI_NONCE_STORE: 'redis',
          PAI_REDIS_URL: 'redis://cache.example',
          PAI_REDIS_PREFIX: 'has space',
        }),
      ).toThrow(/PAI_REDIS_PREFIX/);
      expect(() => loadConfig({ ...env, PAI_NONCE_STORE: 'disk' })).toThrow(
        /PAI_NONCE_STORE: must be "memory", "database" or "redis"/,
      );
    });

    it.each(['0', '1001', 'ten'])(
      'should refuse PAI_DB_POOL_SIZE=%j naming the variable',
      (value) => {
        const error = configErrorOf({
          ...env,
          DATABASE_URL: 'mysql://u:p@db.example:3306/pai',
          PAI_DB_POOL_SIZE: value,
        });
        expect(error.variable).toBe('PAI_DB_POOL_SIZE');
      },
    );

    it('should read PAI_DB_POOL_SIZE', () => {
      expect(
        loadConfig({
          ...env,
          DATABASE_URL: 'mysql://u:p@db.example:3306/pai',
          PAI_DB_POOL_SIZE: '32',
        }).database,
      ).toMatchObject({ poolSize: 32 });
    });
  });

  describe('bad values', () => {
    it.each([
      ['PAI_PORT', 'abc'],
      ['PAI_PORT', '70000'],
      ['PAI_BCRYPT_COST', '9'],
      ['PAI_MAC_WINDOW_MS', '-1'],
      ['PAI_MAX_MESSAGE_BYTES', '1.5'],
      ['PAI_FRAME_TIMEOUT_MS', '50'],
      ['PAI_IDLE_TIMEOUT_MS', '999'],
      ['PAI_MAX_CONNECTIONS', '0'],
      ['PAI_DRAIN_TIMEOUT_MS', '300001'],
      ['PAI_DATABASE_TIMEOUT_MS', 'soon'],
      ['DATABASE_URL', 'postgres://x/y'],
      ['DATABASE_URL', 'mysql://host/'],
      ['DATABASE_URL', 'not a url'],
      ['PAI_NONCE_STORE', 'disk'],
    ])('should refuse %s=%j naming the variable', (variable, value) => {
      const error = configErrorOf({ ...env, [variable]: value });

      expect(error.variable).toBe(variable);
    });

    it('should refuse a PAI_PASSWORD_PEPPER of 16 bytes', () => {
      const error = configErrorOf({ ...env, PAI_PASSWORD_PEPPER: secret(16) });

      expect(error.variable).toBe('PAI_PASSWORD_PEPPER');
    });

    it.each([
      ['a 16-byte secret', () => `default:${secret(16)}`],
      ['a secret that is not base64', () => 'default:not*base64!'],
      ['a bad key id', () => `bad kid:${secret()}`],
      ['a key id listed twice', () => `a:${secret()},a:${secret()}`],
      ['an entry without a colon', () => secret()],
    ])('should refuse PAI_MAC_KEYS with %s', (_case, value) => {
      const error = configErrorOf({ ...env, PAI_MAC_KEYS: value() });

      expect(error.variable).toBe('PAI_MAC_KEYS');
    });

    it('should refuse a TLS certificate without a key', () => {
      const cert = join(dataDir, 'cert.pem');
      writeFileSync(cert, 'cert');

      const error = configErrorOf({ ...env, PAI_TLS_CERT_FILE: cert });

      expect(error.variable).toBe('PAI_TLS_KEY_FILE');
    });

    it('should refuse a TLS key without a certificate', () => {
      const key = join(dataDir, 'key.pem');
      writeFileSync(key, 'key');

      const error = configErrorOf({ ...env, PAI_TLS_KEY_FILE: key });

      expect(error.variable).toBe('PAI_TLS_CERT_FILE');
    });

    it.each([
      ['PAI_TLS_CERT_FILE', 'PAI_TLS_KEY_FILE'],
      ['PAI_TLS_KEY_FILE', 'PAI_TLS_CERT_FILE'],
    ])('should refuse an unreadable %s', (unreadable, readable) => {
      const good = join(dataDir, 'good.pem');
      writeFileSync(good, 'pem');

      const error = configErrorOf({
        ...env,
        [readable]: good,
        [unreadable]: join(dataDir, 'missing.pem'),
      });

      expect(error.variable).toBe(unreadable);
    });

    it('should read both TLS files when both are set', () => {
      const cert = join(dataDir, 'cert.pem');
      const key = join(dataDir, 'key.pem');
      writeFileSync(cert, 'the cert');
      writeFileSync(key, 'the key');

      const config = loadConfig({
        ...env,
        PAI_TLS_CERT_FILE: cert,
        PAI_TLS_KEY_FILE: key,
      });

      expect(tcpOf(config).tls?.cert.toString()).toBe('the cert');
      expect(tcpOf(config).tls?.key.toString()).toBe('the key');
    });
  });

  describe('secrets in error messages', () => {
    it('should not echo the password of a DATABASE_URL', () => {
      const error = configErrorOf({
        ...env,
        DATABASE_URL: 'mysql://u:hunter2@h:3306/',
      });

      expect(error.variable).toBe('DATABASE_URL');
      expect(error.message).not.toContain('hunter2');
    });

    it('should not echo the password of a DATABASE_URL that is not a URL', () => {
      const error = configErrorOf({
        ...env,
        DATABASE_URL: 'mysql://u:hunter2@h:bad port/db',
      });

      expect(error.variable).toBe('DATABASE_URL');
      expect(error.message).not.toContain('hunter2');
    });

    it('should not echo a short PAI_MAC_KEYS secret', () => {
      const short = secret(16);

      const error = configErrorOf({ ...env, PAI_MAC_KEYS: `k:${short}` });

      expect(error.variable).toBe('PAI_MAC_KEYS');
      expect(error.message).not.toContain(short);
    });

    it('should not echo a PAI_MAC_KEYS secret that is not base64', () => {
      const bad = `${secret()}*`;

      const error = configErrorOf({ ...env, PAI_MAC_KEYS: `k:${bad}` });

      expect(error.variable).toBe('PAI_MAC_KEYS');
      expect(error.message).not.toContain(bad.slice(0, 20));
    });

    // A pair written the wrong way round ("secret:kid") must not put the secret in the log.
    it('should not echo a secret written in the key id position', () => {
      const swapped = secret();

      const error = configErrorOf({ ...env, PAI_MAC_KEYS: `${swapped}:k` });

      expect(error.variable).toBe('PAI_MAC_KEYS');
      expect(error.message).not.toContain(swapped);
    });

    it('should not echo a short PAI_PASSWORD_PEPPER', () => {
      const short = secret(16);

      const error = configErrorOf({ ...env, PAI_PASSWORD_PEPPER: short });

      expect(error.variable).toBe('PAI_PASSWORD_PEPPER');
      expect(error.message).not.toContain(short);
    });
  });

  describe('production', () => {
    it.each(['PAI_MAC_KEYS', 'PAI_PASSWORD_PEPPER'])(
      'should refuse to start without %s and write no file',
      (variable) => {
        const error = configErrorOf({
          ...env,
          NODE_ENV: 'production',
          [variable]: undefined,
        });

        expect(error.variable).toBe(variable);
        expect(readdirSync(dataDir)).toEqual([]);
      },
    );

    it('should start with both secrets set', () => {
      const config = loadConfig({ ...env, NODE_ENV: 'production' });

      expect(config.production).toBe(true);
      expect(readdirSync(dataDir)).toEqual([]);
    });
  });

  describe('development secrets', () => {
    const devEnv = (): Env => ({ PAI_DATA_DIR: dataDir });
    const secretsFile = () => join(dataDir, DEV_SECRETS_FILE);

    it('should generate missing secrets once into a file only the owner can read', () => {
      const config = loadConfig(devEnv());

      expect(existsSync(secretsFile())).toBe(true);
      expect(statSync(secretsFile()).mode & 0o777).toBe(0o600);
      expect(config.macKeys.get('default')?.length).toBeGreaterThanOrEqual(32);
      expect(config.passwordPepper.length).toBeGreaterThanOrEqual(32);
    });

    it('should reuse the generated secrets on the next start', () => {
      const first = loadConfig(devEnv());
      const second = loadConfig(devEnv());

      const firstKey = first.macKeys.get('default')!;
      const secondKey = second.macKeys.get('default')!;
      expect(secondKey.equals(firstKey)).toBe(true);
      expect(second.passwordPepper.equals(first.passwordPepper)).toBe(true);
    });

    it('should generate different secrets in another data directory', () => {
      const otherDir = mkdtempSync(join(tmpdir(), 'pai-config-'));
      try {
        const first = loadConfig(devEnv());
        const other = loadConfig({ PAI_DATA_DIR: otherDir });

        const firstKey = first.macKeys.get('default')!;
        expect(other.macKeys.get('default')!.equals(firstKey)).toBe(false);
      } finally {
        rmSync(otherDir, { recursive: true, force: true });
      }
    });

    it('should refuse a secrets file that others can read', () => {
      loadConfig(devEnv());
      chmodSync(secretsFile(), 0o644);

      const error = configErrorOf(devEnv());

      expect(error.variable).toBe('PAI_DATA_DIR');
    });

    it('should not generate secrets when the other instances could not share them', () => {
      const mysql = 'mysql://u:p@db.example:3306/pai';
      for (const [extra, variable, reason] of [
        [{ DATABASE_URL: mysql }, 'PAI_MAC_KEYS', 'DATABASE_URL is set'],
        [{ PAI_TRANSPORT: 'nats' }, 'PAI_MAC_KEYS', 'PAI_TRANSPORT=nats'],
        [{ NODE_ENV: 'production' }, 'PAI_MAC_KEYS', 'NODE_ENV=production'],
        [
          { DATABASE_URL: mysql, PAI_MAC_KEYS: env.PAI_MAC_KEYS },
          'PAI_PASSWORD_PEPPER',
          'DATABASE_URL is set',
        ],
        [
          {
            PAI_TRANSPORT: 'nats',
            PAI_PASSWORD_PEPPER: env.PAI_PASSWORD_PEPPER,
          },
          'PAI_MAC_KEYS',
          'PAI_TRANSPORT=nats',
        ],
      ] as const) {
        const error = configErrorOf({ ...devEnv(), ...extra });

        expect({ extra, variable: error.variable }).toEqual({
          extra,
          variable,
        });
        expect(error.message).toBe(
          `${variable}: is required when ${reason} (or ${variable}_FILE)`,
        );
      }
      expect(readdirSync(dataDir)).toEqual([]);
    });

    it('should name DATABASE_URL_FILE when that is how MySQL was configured', () => {
      const url = join(dataDir, 'url');
      writeFileSync(url, 'mysql://u:p@db.example:3306/pai', { mode: 0o600 });

      const error = configErrorOf({ ...devEnv(), DATABASE_URL_FILE: url });

      expect(error.message).toBe(
        'PAI_MAC_KEYS: is required when DATABASE_URL_FILE is set (or PAI_MAC_KEYS_FILE)',
      );
    });

    it('should refuse the MAC keys and the pepper without the ledger key', () => {
      const error = configErrorOf({
        ...devEnv(),
        PAI_MAC_KEYS: env.PAI_MAC_KEYS,
        PAI_PASSWORD_PEPPER: env.PAI_PASSWORD_PEPPER,
      });

      expect(error.message).toBe(
        'PAI_LEDGER_KEY: is required when PAI_MAC_KEYS is set (or PAI_LEDGER_KEY_FILE)',
      );
      expect(readdirSync(dataDir)).toEqual([]);
    });

    it.each([
      ['PAI_MAC_KEYS', 'PAI_PASSWORD_PEPPER'],
      ['PAI_PASSWORD_PEPPER', 'PAI_MAC_KEYS'],
      ['PAI_LEDGER_KEY', 'PAI_MAC_KEYS'],
    ])(
      'should refuse %s without %s rather than pair it with a generated one',
      (given, missing) => {
        const error = configErrorOf({ ...devEnv(), [given]: env[given] });

        expect(error.variable).toBe(missing);
        expect(error.message).toBe(
          `${missing}: is required when ${given} is set (or ${missing}_FILE)`,
        );
        expect(readdirSync(dataDir)).toEqual([]);
      },
    );

    it('should count a secret given as a file as given', () => {
      const pepperFile = join(dataDir, 'pepper');
      writeFileSync(pepperFile, env.PAI_PASSWORD_PEPPER!, { mode: 0o600 });

      const error = configErrorOf({
        ...devEnv(),
        PAI_PASSWORD_PEPPER_FILE: pepperFile,
      });

      expect(error.message).toBe(
        'PAI_MAC_KEYS: is required when PAI_PASSWORD_PEPPER_FILE is set (or PAI_MAC_KEYS_FILE)',
      );
    });

    it('should generate them with nothing configured but the data directory, TLS and the like', () => {
      const cert = join(dataDir, 'cert.pem');
      const key = join(dataDir, 'key.pem');
      writeFileSync(cert, 'cert');
      writeFileSync(key, 'key');

      const config = loadConfig({
        ...devEnv(),
        DATABASE_URL: '',
        PAI_MAC_KEYS: '',
        PAI_TRANSPORT: 'tcp',
        PAI_TLS_CERT_FILE: cert,
        PAI_TLS_KEY_FILE: key,
        PAI_NONCE_STORE: 'database',
        PAI_BCRYPT_COST: '10',
      });

      expect(existsSync(secretsFile())).toBe(true);
      expect(config.passwordPepper.length).toBeGreaterThanOrEqual(32);
    });

    it('should add a ledger key to a development secrets file that has none, keeping the rest', () => {
      const macKeys = `default:${randomBytes(32).toString('base64')}`;
      const pepperText = randomBytes(32).toString('base64');
      writeFileSync(
        secretsFile(),
        JSON.stringify({
          PAI_MAC_KEYS: macKeys,
          PAI_PASSWORD_PEPPER: pepperText,
        }),
        { mode: 0o600 },
      );

      const config = loadConfig(devEnv());

      const written = JSON.parse(readFileSync(secretsFile(), 'utf8')) as Record<
        string,
        string
      >;
      expect(written.PAI_MAC_KEYS).toBe(macKeys);
      expect(written.PAI_PASSWORD_PEPPER).toBe(pepperText);
      expect(Buffer.from(written.PAI_LEDGER_KEY, 'base64')).toEqual(
        config.ledgerKey,
      );
      expect(statSync(secretsFile()).mode & 0o777).toBe(0o600);
      // Read again, the key stays the one the blocks were sealed with.
      expect(loadConfig(devEnv()).ledgerKey).toEqual(config.ledgerKey);
    });

    it('should not read an existing secrets file once MySQL is configured', () => {
      loadConfig(devEnv());

      const error = configErrorOf({
        ...devEnv(),
        DATABASE_URL: 'mysql://u:p@db.example:3306/pai',
      });

      expect(error.variable).toBe('PAI_MAC_KEYS');
    });
  });

  describe('several MAC keys', () => {
    it('should read every kid:secret pair', () => {
      const a = randomBytes(32);
      const b = randomBytes(48);

      const config = loadConfig({
        ...env,
        PAI_MAC_KEYS: `a:${a.toString('base64')},b:${b.toString('base64')}`,
      });

      expect(config.macKeys.size).toBe(2);
      expect(config.macKeys.get('a')!.equals(a)).toBe(true);
      expect(config.macKeys.get('b')!.equals(b)).toBe(true);
    });
  });

  describe('HTTP side port', () => {
    it('should be off when PAI_HTTP_PORT is unset', () => {
      expect(loadConfig(env).http).toBeUndefined();
    });

    it('should listen on loopback by default when PAI_HTTP_PORT is set', () => {
      expect(loadConfig({ ...env, PAI_HTTP_PORT: '9090' }).http).toEqual({
        host: '127.0.0.1',
        port: 9090,
      });
    });

    it('should use PAI_HTTP_HOST', () => {
      const config = loadConfig({
        ...env,
        PAI_HTTP_PORT: '9090',
        PAI_HTTP_HOST: '0.0.0.0',
      });
      expect(config.http).toEqual({ host: '0.0.0.0', port: 9090 });
    });

    it.each(['http', '-1', '65536', '90.5'])(
      'should refuse PAI_HTTP_PORT=%s',
      (value) => {
        expect(configErrorOf({ ...env, PAI_HTTP_PORT: value }).variable).toBe(
          'PAI_HTTP_PORT',
        );
      },
    );

    it('should refuse the TCP port as the HTTP port', () => {
      const error = configErrorOf({
        ...env,
        PAI_PORT: '8080',
        PAI_HTTP_PORT: '8080',
      });
      expect(error.variable).toBe('PAI_HTTP_PORT');
    });

    it('should stay off with PAI_HTTP_HOST but an empty PAI_HTTP_PORT (the image, turned off)', () => {
      expect(
        loadConfig({ ...env, PAI_HTTP_HOST: '0.0.0.0', PAI_HTTP_PORT: '' })
          .http,
      ).toBeUndefined();
    });

    it('should refuse a PAI_HTTP_HOST that is not a host', () => {
      const error = configErrorOf({
        ...env,
        PAI_HTTP_PORT: '9090',
        PAI_HTTP_HOST: 'a b',
      });
      expect(error.variable).toBe('PAI_HTTP_HOST');
    });
  });

  describe('logs', () => {
    it('should log JSON or pretty at info by default', () => {
      expect(loadConfig(env).log).toEqual({ level: 'info', format: 'auto' });
    });

    it('should read PAI_LOG_LEVEL and PAI_LOG_FORMAT', () => {
      expect(
        loadConfig({ ...env, PAI_LOG_LEVEL: 'warn', PAI_LOG_FORMAT: 'json' })
          .log,
      ).toEqual({ level: 'warn', format: 'json' });
    });

    it('should refuse an unknown PAI_LOG_LEVEL', () => {
      expect(configErrorOf({ ...env, PAI_LOG_LEVEL: 'loud' }).variable).toBe(
        'PAI_LOG_LEVEL',
      );
    });

    it('should refuse an unknown PAI_LOG_FORMAT', () => {
      expect(configErrorOf({ ...env, PAI_LOG_FORMAT: 'xml' }).variable).toBe(
        'PAI_LOG_FORMAT',
      );
    });
  });

  describe('transport', () => {
    const nats = { PAI_TRANSPORT: 'nats' };

    it('should use TCP by default', () => {
      expect(loadConfig(env).transport).toMatchObject({ kind: 'tcp' });
    });

    it('should use the documented NATS defaults', () => {
      expect(loadConfig({ ...env, ...nats }).transport).toEqual({
        kind: 'nats',
        servers: ['nats://127.0.0.1:4222'],
        credentials: undefined,
        tls: false,
        queue: 'pai',
        subjectPrefix: 'pai.',
        inboxPrefix: '_INBOX.',
      });
    });

    it('should read the inbox prefix', () => {
      const config = loadConfig({
        ...env,
        ...nats,
        PAI_NATS_INBOX_PREFIX: '_INBOX.pai.',
      });
      expect(config.transport).toMatchObject({ inboxPrefix: '_INBOX.pai.' });
    });

    it('should read the servers, queue and subject prefix', () => {
      const config = loadConfig({
        ...env,
        ...nats,
        PAI_NATS_SERVERS: 'nats://a.example:4222, nats://b.example:4223',
        PAI_NATS_QUEUE: 'pai-eu',
        PAI_NATS_SUBJECT_PREFIX: 'prod.pai.',
      });
      expect(config.transport).toMatchObject({
        servers: ['nats://a.example:4222', 'nats://b.example:4223'],
        queue: 'pai-eu',
        subjectPrefix: 'prod.pai.',
      });
    });

    it('should take user and password out of the URLs, so the URLs can be logged', () => {
      const config = loadConfig({
        ...env,
        ...nats,
        PAI_NATS_SERVERS:
          'nats://pai:s%40cret@a:4222,nats://pai:s%40cret@b:4222',
      });
      expect(config.transport).toMatchObject({
        servers: ['nats://a:4222', 'nats://b:4222'],
        credentials: { user: 'pai', pass: 's@cret' },
      });
      expect(
        JSON.stringify(
          config.transport.kind === 'nats' && config.transport.servers,
        ),
      ).not.toContain('cret');
    });

    it('should read a token given as the URL user', () => {
      const config = loadConfig({
        ...env,
        ...nats,
        PAI_NATS_SERVERS: 'tls://t0ken@broker:4222',
      });
      expect(config.transport).toMatchObject({
        servers: ['tls://broker:4222'],
        credentials: { token: 't0ken' },
        tls: true,
      });
    });

    it('should read PAI_NATS_SERVERS_FILE', () => {
      const file = join(dataDir, 'nats');
      writeFileSync(file, 'nats://pai:pw@broker:4222\n', { mode: 0o600 });
      const config = loadConfig({
        ...env,
        ...nats,
        PAI_NATS_SERVERS_FILE: file,
      });
      expect(config.transport).toMatchObject({
        servers: ['nats://broker:4222'],
        credentials: { user: 'pai', pass: 'pw' },
      });
    });

    it('should keep nonces in the database with NATS, even on SQLite', () => {
      expect(loadConfig({ ...env, ...nats }).nonceRecord).toEqual({
        kind: 'database',
      });
    });

    it('should refuse the memory nonce record with NATS: another instance would accept a replay', () => {
      const error = configErrorOf({
        ...env,
        ...nats,
        PAI_NONCE_STORE: 'memory',
      });
      expect(error.variable).toBe('PAI_NONCE_STORE');
    });

    it('should refuse TLS certificate files with NATS, where the service listens on no port', () => {
      const error = configErrorOf({
        ...env,
        ...nats,
        PAI_TLS_CERT_FILE: '/x/cert.pem',
        PAI_TLS_KEY_FILE: '/x/key.pem',
      });
      expect(error.variable).toBe('PAI_TLS_CERT_FILE');
    });

    it('should not compare PAI_HTTP_PORT with a PAI_PORT that NATS does not use', () => {
      const config = loadConfig({ ...env, ...nats, PAI_HTTP_PORT: '8080' });
      expect(config.http?.port).toBe(8080);
    });

    it.each([
      ['PAI_TRANSPORT', { PAI_TRANSPORT: 'grpc' }],
      ['PAI_NATS_QUEUE', { ...nats, PAI_NATS_QUEUE: 'has space' }],
      ['PAI_NATS_SUBJECT_PREFIX', { ...nats, PAI_NATS_SUBJECT_PREFIX: 'pai' }],
      [
        'PAI_NATS_SUBJECT_PREFIX',
        { ...nats, PAI_NATS_SUBJECT_PREFIX: 'pai.*.' },
      ],
      ['PAI_NATS_SUBJECT_PREFIX', { ...nats, PAI_NATS_SUBJECT_PREFIX: '>.' }],
      ['PAI_NATS_SUBJECT_PREFIX', { ...nats, PAI_NATS_SUBJECT_PREFIX: 'a..' }],
      ['PAI_NATS_SERVERS', { ...nats, PAI_NATS_SERVERS: 'http://broker:4222' }],
      ['PAI_NATS_SERVERS', { ...nats, PAI_NATS_SERVERS: 'broker:4222' }],
      [
        'PAI_NATS_SERVERS',
        { ...nats, PAI_NATS_SERVERS: 'nats://broker:4222/x' },
      ],
      [
        'PAI_NATS_SERVERS',
        { ...nats, PAI_NATS_SERVERS: 'nats://a:4222,tls://b:4222' },
      ],
      [
        'PAI_NATS_SERVERS',
        { ...nats, PAI_NATS_SERVERS: 'nats://u:p@a:4222,nats://b:4222' },
      ],
      ['PAI_NATS_INBOX_PREFIX', { ...nats, PAI_NATS_INBOX_PREFIX: '_INBOX' }],
      [
        'PAI_NATS_INBOX_PREFIX',
        { ...nats, PAI_NATS_INBOX_PREFIX: '_INBOX.>.' },
      ],
      ['PAI_NATS_INBOX_PREFIX', { ...nats, PAI_NATS_INBOX_PREFIX: '_INBOX..' }],
      ['PAI_NATS_INBOX_PREFIX', { ...nats, PAI_NATS_INBOX_PREFIX: 'pai.' }],
      [
        'PAI_NATS_INBOX_PREFIX',
        { ...nats, PAI_NATS_INBOX_PREFIX: 'pai.inbox.' },
      ],
      [
        'PAI_NATS_INBOX_PREFIX',
        { ...nats, PAI_NATS_SUBJECT_PREFIX: '_INBOX.pai.' },
      ],
    ])('should refuse a bad %s (%j)', (variable, extra) => {
      expect(configErrorOf({ ...env, ...extra }).variable).toBe(variable);
    });

    it('should not echo the password of a PAI_NATS_SERVERS entry', () => {
      const error = configErrorOf({
        ...env,
        ...nats,
        PAI_NATS_SERVERS: 'nats://pai:hunter2@broker:4222,ftp://pai:hunter2@x',
      });
      expect(error.variable).toBe('PAI_NATS_SERVERS');
      expect(error.message).not.toContain('hunter2');
      const unparsable = configErrorOf({
        ...env,
        ...nats,
        PAI_NATS_SERVERS: 'nats://pai:hunter2@[broken',
      });
      expect(unparsable.message).not.toContain('hunter2');
    });

    it('should refuse PAI_NATS_SERVERS set together with its _FILE variant', () => {
      const file = join(dataDir, 'nats');
      writeFileSync(file, 'nats://broker:4222', { mode: 0o600 });
      const error = configErrorOf({
        ...env,
        ...nats,
        PAI_NATS_SERVERS: 'nats://broker:4222',
        PAI_NATS_SERVERS_FILE: file,
      });
      expect(error.variable).toBe('PAI_NATS_SERVERS_FILE');
    });
  });

  describe('NATS NKey and credentials files', () => {
    const nats = { PAI_TRANSPORT: 'nats' };
    const user = nkeys.createUser();
    const seed = new TextDecoder().decode(user.getSeed());

    function file(name: string, contents: string): string {
      const path = join(dataDir, name);
      writeFileSync(path, contents, { mode: 0o600 });
      return path;
    }

    /** A credentials file as `nsc` writes it; the broker, not the client, checks the JWT. */
    function credsText(jwt: string, nkeySeed: string): string {
      return [
        '-----BEGIN NATS USER JWT-----',
        jwt,
        '------END NATS USER JWT------',
        '',
        '************************* IMPORTANT *************************',
        'NKEY Seed printed below can be used to sign and prove identity.',
        '',
        '-----BEGIN USER NKEY SEED-----',
        nkeySeed,
        '------END USER NKEY SEED------',
        '',
      ].join('\n');
    }

    /** What the connection sends the broker for a challenge, with the configured credentials. */
    function authFor(env: Env, challenge: string): Partial<JwtAuth> {
      const { transport } = loadConfig(env);
      if (transport.kind !== 'nats') throw new Error('not NATS');
      const { authenticator } = natsConnectionOptions(transport) as {
        authenticator?: (nonce?: string) => unknown;
      };
      return authenticator!(challenge) as Partial<JwtAuth>;
    }

    it('should authenticate with the NKey seed of PAI_NATS_NKEY_SEED_FILE', () => {
      const auth = authFor(
        {
          ...env,
          ...nats,
          PAI_NATS_NKEY_SEED_FILE: file('seed.nk', `${seed}\n`),
        },
        'nonce-1',
      );
      expect(auth.nkey).toBe(user.getPublicKey());
      const signature = nkeys.decode(auth.sig!);
      expect(user.verify(new TextEncoder().encode('nonce-1'), signature)).toBe(
        true,
      );
    });

    it('should authenticate with the JWT and seed of PAI_NATS_CREDS_FILE', () => {
      const auth = authFor(
        {
          ...env,
          ...nats,
          PAI_NATS_CREDS_FILE: file(
            'pai.creds',
            credsText('e30.e30.sig', seed),
          ),
        },
        'nonce-2',
      );
      expect(auth).toMatchObject({
        jwt: 'e30.e30.sig',
        nkey: user.getPublicKey(),
      });
    });

    it.each([
      ['not a seed', 'hunter2-not-a-seed'],
      [
        'an account seed',
        new TextDecoder().decode(nkeys.createAccount().getSeed()),
      ],
      ['a seed with a wrong character', `${seed.slice(0, -1)}0`],
    ])(
      'should refuse a PAI_NATS_NKEY_SEED_FILE holding %s, without echoing it',
      (_, contents) => {
        const error = configErrorOf({
          ...env,
          ...nats,
          PAI_NATS_NKEY_SEED_FILE: file('seed.nk', contents),
        });
        expect(error.variable).toBe('PAI_NATS_NKEY_SEED_FILE');
        expect(error.message).not.toContain(contents);
        expect(error.message).not.toContain(contents.slice(0, 12));
      },
    );

    it.each([
      ['no seed', credsText('e30.e30.sig', '').split('-----BEGIN USER')[0]],
      ['an empty JWT', credsText('', seed)],
      ['a bad seed', credsText('e30.e30.sig', 'SUAHUNTER2')],
    ])(
      'should refuse a PAI_NATS_CREDS_FILE with %s, without echoing it',
      (_, contents) => {
        const error = configErrorOf({
          ...env,
          ...nats,
          PAI_NATS_CREDS_FILE: file('pai.creds', contents),
        });
        expect(error.variable).toBe('PAI_NATS_CREDS_FILE');
        expect(error.message).not.toContain(seed.slice(0, 12));
        expect(error.message).not.toContain('HUNTER2');
      },
    );

    it('should refuse a missing or empty file, naming the variable', () => {
      expect(
        configErrorOf({
          ...env,
          ...nats,
          PAI_NATS_CREDS_FILE: join(dataDir, 'absent.creds'),
        }).variable,
      ).toBe('PAI_NATS_CREDS_FILE');
      expect(
        configErrorOf({
          ...env,
          ...nats,
          PAI_NATS_NKEY_SEED_FILE: file('empty.nk', '\n'),
        }).variable,
      ).toBe('PAI_NATS_NKEY_SEED_FILE');
    });

    it('should refuse two ways of authenticating at once', () => {
      const seedFile = file('seed.nk', seed);
      expect(
        configErrorOf({
          ...env,
          ...nats,
          PAI_NATS_NKEY_SEED_FILE: seedFile,
          PAI_NATS_CREDS_FILE: file(
            'pai.creds',
            credsText('e30.e30.sig', seed),
          ),
        }).variable,
      ).toBe('PAI_NATS_NKEY_SEED_FILE');
      const withUrl = configErrorOf({
        ...env,
        ...nats,
        PAI_NATS_SERVERS: 'nats://pai:hunter2@broker:4222',
        PAI_NATS_NKEY_SEED_FILE: seedFile,
      });
      expect(withUrl.variable).toBe('PAI_NATS_NKEY_SEED_FILE');
      expect(withUrl.message).not.toContain('hunter2');
    });

    it('should refuse a seed in the environment itself', () => {
      const error = configErrorOf({
        ...env,
        ...nats,
        PAI_NATS_NKEY_SEED: seed,
      });
      expect(error.variable).toBe('PAI_NATS_NKEY_SEED');
      expect(error.message).not.toContain(seed);
    });
  });

  describe('secrets from files (*_FILE)', () => {
    function secretFile(name: string, contents: string): string {
      const file = join(dataDir, name);
      writeFileSync(file, contents, { mode: 0o600 });
      return file;
    }

    it('should read PAI_MAC_KEYS_FILE and PAI_PASSWORD_PEPPER_FILE, ignoring the final line break', () => {
      const config = loadConfig({
        PAI_DATA_DIR: dataDir,
        NODE_ENV: 'production',
        PAI_MAC_KEYS_FILE: secretFile(
          'keys',
          `default:${macKey.toString('base64')}\n`,
        ),
        PAI_PASSWORD_PEPPER_FILE: secretFile(
          'pepper',
          `${pepper.toString('base64')}\n`,
        ),
        PAI_LEDGER_KEY_FILE: secretFile('ledger', `${env.PAI_LEDGER_KEY}\n`),
      });

      expect(config.macKeys.get('default')!.equals(macKey)).toBe(true);
      expect(config.passwordPepper.equals(pepper)).toBe(true);
      // Production accepted the files as the required secrets, and nothing was generated.
      expect(readdirSync(dataDir).sort()).toEqual(['keys', 'ledger', 'pepper']);
    });

    it('should read DATABASE_URL_FILE', () => {
      const config = loadConfig({
        ...env,
        DATABASE_URL_FILE: secretFile(
          'url',
          'mysql://pai:s3cret@db:3306/pai_1\n',
        ),
      });

      expect(config.database).toEqual({
        type: 'mysql',
        url: 'mysql://pai:s3cret@db:3306/pai_1',
        database: 'pai_1',
        poolSize: 10,
      });
    });

    it.each(['PAI_MAC_KEYS', 'PAI_PASSWORD_PEPPER', 'DATABASE_URL'])(
      'should refuse %s set together with its _FILE variant',
      (name) => {
        const error = configErrorOf({
          ...env,
          DATABASE_URL: 'mysql://root@127.0.0.1:3306/pai_1',
          [`${name}_FILE`]: secretFile('x', 'anything'),
        });
        expect(error.variable).toBe(`${name}_FILE`);
      },
    );

    it('should name the variable of a file that cannot be read', () => {
      const error = configErrorOf({
        ...env,
        PAI_PASSWORD_PEPPER: undefined,
        PAI_PASSWORD_PEPPER_FILE: join(dataDir, 'missing'),
      });
      expect(error.variable).toBe('PAI_PASSWORD_PEPPER_FILE');
      expect(error.message).toContain('ENOENT');
    });

    it('should refuse an empty file', () => {
      const error = configErrorOf({
        ...env,
        PAI_MAC_KEYS: undefined,
        PAI_MAC_KEYS_FILE: secretFile('empty', '\n'),
      });
      expect(error.variable).toBe('PAI_MAC_KEYS_FILE');
    });

    it('should name the file variable, and not echo the contents, of a bad secret', () => {
      const short = randomBytes(16).toString('base64');
      const error = configErrorOf({
        ...env,
        PAI_MAC_KEYS: undefined,
        PAI_MAC_KEYS_FILE: secretFile('keys', `default:${short}`),
      });
      expect(error.variable).toBe('PAI_MAC_KEYS_FILE');
      expect(error.message).not.toContain(short);
    });
  });
});
