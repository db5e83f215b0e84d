// Bytes held per accepted message inside the window, heap and array buffers together, after a
// full GC, for the service's memory record and for a Map of string nonces (the naive form).
// Run by the bench as `node --expose-gc bench/nonce-memory.mts` (type stripping, no loader, so
// nothing but the two records moves the heap); prints JSON. Needs the build (dist/).
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import type * as Built from '../src/nonce-record/memory-record.js';

const require = createRequire(import.meta.url);
const { MemoryRecord } =
  require('../dist/src/nonce-record/memory-record.js') as typeof Built;

const MESSAGES = 300_000;
const WINDOW_MS = 300_000;
const prefix = randomBytes(12).toString('base64url');
// Nonces as clients make them: 22 base64url characters (16 random bytes), built fresh each time.
const nonceOf = (i: number) => `${prefix}${i.toString(36).padStart(6, '0')}`;

const gc = globalThis.gc;
if (!gc) throw new Error('run with node --expose-gc');

function held(): number {
  gc!();
  gc!();
  const usage = process.memoryUsage();
  return usage.heapUsed + usage.arrayBuffers;
}

function measure<T>(build: () => T): { record: T; bytesPerMessage: number } {
  const before = held();
  const record = build();
  const after = held();
  return { record, bytesPerMessage: (after - before) / MESSAGES };
}

const now = Date.now();
// Messages spread over the window as under steady load: ts from now - window to now.
const tsOf = (i: number) =>
  now - WINDOW_MS + Math.floor((i / MESSAGES) * WINDOW_MS);

const memory = measure(() => {
  const record = new MemoryRecord(WINDOW_MS);
  for (let i = 0; i < MESSAGES; i += 1) {
    if (!record.accept('bench', nonceOf(i), tsOf(i), now)) {
      throw new Error('false replay');
    }
  }
  return record;
});
if (memory.record.size !== MESSAGES) throw new Error('record lost pairs');

const stringMap = measure(() => {
  const record = new Map<string, number>();
  for (let i = 0; i < MESSAGES; i += 1) {
    record.set(`bench\n${nonceOf(i)}`, tsOf(i) + WINDOW_MS);
  }
  return record;
});

console.log(
  JSON.stringify({
    messages: MESSAGES,
    windowMs: WINDOW_MS,
    memory: {
      bytesPerMessage: memory.bytesPerMessage,
      tableBytes: memory.record.bytes,
    },
    stringMap: { bytesPerMessage: stringMap.bytesPerMessage },
  }),
);
