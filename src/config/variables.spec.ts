import { randomBytes } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { loadConfig } from './config';
import { ConfigError } from '@pai/client/config/config.error';
import {
  APPLIES,
  VARIABLES,
  type Env,
  type Kind,
  type Variable,
} from './variables';

/** A valid environment with nothing to write: the secrets given, no data directory touched. */
const BASE: Env = {
  PAI_MAC_KEYS: `default:${randomBytes(32).toString('base64')}`,
  PAI_PASSWORD_PEPPER: randomBytes(32).toString('base64'),
  PAI_LEDGER_KEY: randomBytes(32).toString('base64'),
  PAI_DATA_DIR: '/nonexistent',
};

/** For each `applies`: an environment where it holds, and one where it does not. */
const WHERE: Record<keyof typeof APPLIES, { holds: Env; not?: Env }> = {
  always: { holds: {} },
  tcp: { holds: {}, not: { PAI_TRANSPORT: 'nats' } },
  nats: { holds: { PAI_TRANSPORT: 'nats' }, not: {} },
  mysql: {
    holds: { DATABASE_URL: 'mysql://u:p@db.example:3306/pai' },
    not: {},
  },
  redis: {
    holds: { PAI_NONCE_STORE: 'redis', PAI_REDIS_URL: 'redis://cache.example' },
    not: {},
  },
  http: { holds: { PAI_HTTP_PORT: '9090' }, not: {} },
};

/** A value the kind refuses, for the kinds parsed from the table alone. */
function refusedBy(kind: Kind): string | undefined {
  switch (kind.type) {
    case 'integer':
      return String(kind.max + 1);
    case 'choice':
      return 'bogus';
    case 'text':
      return 'has space';
    default:
      return undefined;
  }
}

function variableOf(env: Env): string | undefined {
  try {
    loadConfig(env);
    return undefined;
  } catch (error) {
    if (error instanceof ConfigError) return error.variable;
    throw error;
  }
}

const entries: [string, Variable][] = Object.entries(VARIABLES);
const parsedFromTable = entries.filter(
  ([, variable]) => refusedBy(variable.kind) !== undefined,
);

describe('VARIABLES', () => {
  it.each(parsedFromTable)(
    'should have %s refused, by name, where it applies',
    (name, variable) => {
      const env = {
        ...BASE,
        ...WHERE[variable.applies].holds,
        [name]: refusedBy(variable.kind),
      };
      expect(variableOf(env)).toBe(name);
    },
  );

  it.each(
    parsedFromTable.filter(([, variable]) => WHERE[variable.applies].not),
  )('should not read %s where it does not apply', (name, variable) => {
    const env = {
      ...BASE,
      ...WHERE[variable.applies].not,
      [name]: refusedBy(variable.kind),
    };
    expect(variableOf(env)).toBeUndefined();
  });

  it.each(entries.filter(([, variable]) => variable.default !== undefined))(
    'should give %s a default its own rule accepts',
    (_name, { kind, default: fallback }) => {
      if (kind.type === 'integer') {
        expect(fallback).toBeGreaterThanOrEqual(kind.min);
        expect(fallback).toBeLessThanOrEqual(kind.max);
      } else if (kind.type === 'choice') {
        expect(kind.values).toContain(fallback);
      } else if (kind.type === 'text') {
        expect(kind.pattern.test(String(fallback))).toBe(true);
      }
    },
  );

  it('should describe every variable the configuration reads', () => {
    const named = new Set<string>();
    for (const file of readdirSync(__dirname)) {
      if (!file.endsWith('.ts') || file.endsWith('.spec.ts')) continue;
      const source = readFileSync(join(__dirname, file), 'utf8');
      for (const [, quoted, read] of source.matchAll(
        /'((?:PAI|DATABASE|NODE)_[A-Z0-9_]+)'|\benv\.([A-Z][A-Z0-9_]*)/g,
      )) {
        named.add(quoted ?? read);
      }
    }
    const table: Record<string, Variable> = VARIABLES;
    const undescribed = [...named].filter((name) => {
      const base = table[name.replace(/_FILE$/, '')];
      return !(name in table) && !(base && 'file' in base);
    });
    expect(named.size).toBeGreaterThan(20);
    expect(undescribed).toEqual([]);
  });

  it('should leave the environment to the configuration: no other room reads process.env', () => {
    const root = join(__dirname, '..');
    const readers = readdirSync(root, { recursive: true, encoding: 'utf8' })
      .filter((file) => file.endsWith('.ts') && !file.endsWith('.spec.ts'))
      .filter((file) => !/^(config|cli)\//.test(file))
      .filter((file) =>
        readFileSync(join(root, file), 'utf8').includes('process.env'),
      )
      .map((file) => relative(root, join(root, file)));
    expect(readers).toEqual([]);
  });
});
