// Preloaded into a service process by the bench (node --import): counts the statements the
// service sends to MySQL, by their first word, and sends the counts to the parent when it asks.
// Round trips per request = difference of two readings / requests sent in between.
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

type Method = (this: unknown, sql: unknown, ...rest: unknown[]) => unknown;
interface Counted {
  query: Method;
  execute: Method;
}

const require = createRequire(import.meta.url);
// Not among mysql2's exports: reached through its directory, for this measurement only.
const BaseConnection = require(
  join(dirname(require.resolve('mysql2')), 'lib/base/connection.js'),
) as { prototype: Counted };

const counts: Record<string, number> = {};
for (const method of ['query', 'execute'] as const) {
  const original = BaseConnection.prototype[method];
  BaseConnection.prototype[method] = function counted(sql, ...rest) {
    const text =
      typeof sql === 'string'
        ? sql
        : ((sql as { sql?: string } | null)?.sql ?? '');
    const verb = text.trim().split(/\s+/, 1)[0].toUpperCase() || '?';
    counts[verb] = (counts[verb] ?? 0) + 1;
    return original.call(this, sql, ...rest);
  };
}
// Asked over the IPC channel (signals are taken: Nest's shutdown hooks listen to SIGUSR2 too).
process.on('message', (message) => {
  if (message === 'counts') process.send?.({ counts });
});
process.channel?.unref();
