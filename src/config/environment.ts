import { ConfigError } from '@pai/client/config/config.error';
import {
  envOrFile as readEnvOrFile,
  sourceOf as sourceOfValue,
} from '@pai/client/config/mac-keys';
import {
  VARIABLES,
  type ChoiceOf,
  type Defaulted,
  type Env,
  type FileVariable,
  type NamesOf,
  type VariableName,
} from './variables';

/** `, got <value>` for a message, or nothing for a secret. */
function got(name: VariableName, shown: string): string {
  return 'secret' in VARIABLES[name] ? '' : `, got ${shown}`;
}

/** A whole number in the table's range; unset or empty: undefined. */
export function optionalInteger(
  env: Env,
  name: NamesOf<'integer'>,
): number | undefined {
  const raw = env[name];
  if (raw === undefined || raw === '') return undefined;
  if (!/^[0-9]+$/.test(raw)) {
    throw new ConfigError(
      name,
      `must be a whole number${got(name, `"${raw}"`)}`,
    );
  }
  const { min, max } = VARIABLES[name].kind;
  const value = Number(raw);
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new ConfigError(
      name,
      `must be between ${min} and ${max}${got(name, raw)}`,
    );
  }
  return value;
}

/** A whole number in the table's range; unset or empty: the table's default. */
export function integer(
  env: Env,
  name: NamesOf<'integer'> & Defaulted,
): number {
  return optionalInteger(env, name) ?? VARIABLES[name].default;
}

/** One of the table's values; unset or empty: undefined. */
export function optionalChoice<N extends NamesOf<'choice'>>(
  env: Env,
  name: N,
): ChoiceOf<N> | undefined {
  const raw = env[name] || undefined;
  if (raw === undefined) return undefined;
  const values: readonly string[] = VARIABLES[name].kind.values;
  if (!values.includes(raw)) {
    const quoted = values.map((value) => `"${value}"`);
    const listed = `${quoted.slice(0, -1).join(', ')} or ${quoted.at(-1)}`;
    throw new ConfigError(name, `must be ${listed}${got(name, `"${raw}"`)}`);
  }
  return raw as ChoiceOf<N>;
}

/** One of the table's values; unset or empty: the table's default. */
export function choice<N extends NamesOf<'choice'> & Defaulted>(
  env: Env,
  name: N,
): ChoiceOf<N> {
  return optionalChoice(env, name) ?? (VARIABLES[name].default as ChoiceOf<N>);
}

/** A text the table's pattern accepts; unset (or empty, unless empty is a value): the default. */
export function text(env: Env, name: NamesOf<'text'>): string {
  const { kind, default: fallback } = VARIABLES[name];
  const raw = env[name];
  const empty = raw === '' && !('keepsEmpty' in kind);
  const value = raw === undefined || empty ? fallback : raw;
  if (!kind.pattern.test(value)) {
    throw new ConfigError(
      name,
      `must be ${kind.rule}${got(name, `"${value}"`)}`,
    );
  }
  return value;
}

/** Whether a switch variable holds the one value that changes anything. */
export function isOn(env: Env, name: NamesOf<'switch'>): boolean {
  return env[name] === VARIABLES[name].kind.on;
}

/** envOrFile of the client package, for the variables of the table that take a file. */
export function envOrFile(env: Env, name: FileVariable): string | undefined {
  return readEnvOrFile(env, name);
}

/** Which variable a value read by envOrFile came from, for error messages. */
export function sourceOf(env: Env, name: FileVariable): string {
  return sourceOfValue(env, name);
}
