import { readFileSync } from 'node:fs';
import { ConfigError } from './config.error';

type Env = Record<string, string | undefined>;

/** The secrets that may be given as files, the way Docker and Compose hand secrets over. */
export const FILE_VARIABLES = [
  'PAI_MAC_KEYS',
  'PAI_PASSWORD_PEPPER',
  'DATABASE_URL',
  'PAI_REDIS_URL',
  // May carry the broker's user and password, or a token.
  'PAI_NATS_SERVERS',
] as const;

/**
 * The value of `name`, or the contents of the file named by `name_FILE` (one trailing line break
 * and surrounding blanks removed). Setting both is refused rather than resolved by a rule the
 * operator would have to remember. File contents are never echoed: they are secrets.
 */
export function envOrFile(
  env: Env,
  name: (typeof FILE_VARIABLES)[number],
): string | undefined {
  const direct = env[name] || undefined;
  const fileVariable = `${name}_FILE`;
  const file = env[fileVariable] || undefined;
  if (!file) return direct;
  if (direct) {
    throw new ConfigError(
      fileVariable,
      `set either ${name} or ${fileVariable}, not both`,
    );
  }
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new ConfigError(
      fileVariable,
      `cannot read ${file} (${(error as NodeJS.ErrnoException).code ?? 'error'})`,
    );
  }
  const value = text.trim();
  if (value === '') throw new ConfigError(fileVariable, `${file} is empty`);
  return value;
}
