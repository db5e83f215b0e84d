// Scenario 4: bytes held per accepted message inside the window, heap and array buffers together,
// after a full GC, for the service's memory record and for a Map of string nonces (the naive form).
// Run by bench/run.mjs as `node --expose-gc bench/nonce-memory.mjs`; prints JSON.
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import process from 'node:process';

const require = createRequire(import.meta.url);
const { MemoryRecord } = require('../dist/src/nonce-record/memory-record.js');

const MESSAGES = 300_000;
const WINDOW_MS = 300_000;
const prefix = randomBytes(12).toString('base64url');
// Nonces as clients make them: 22 base64url characters (16 random bytes), built fresh each time.
const nonceOf = (i) => `${prefix}${i.toString(36).padStart(6, '0')}`;

function held() {
  globalThis.gc();
  globalThis.gc();
  const usage = process.memoryUsage();
  return usage.heapUsed + usage.arrayBuffers;
}

function measure(build) {
  const before = held();
  const record = build();
  const after = held();
  return { record, bytesPerMessage: (after - before) / MESSAGES };
}

const now = Date.now();
// Messages spread over the window as under steady load: ts from now - window to now.
const tsOf = (i) => now - WINDOW_MS + Math.floor((i / MESSAGES) * WINDOW_MS);

const memory = measure(() => {
  const record = new MemoryRecord(WINDOW_MS);
  for (let i = 0; i < MESSAGES; i += 1) {
    if (!record.accept('bench', nonceOf(i), tsOf(i), now)) throw new Error('false replay');
  }
  return record;
});
if (memory.record.size !== MESSAGES) throw new Error('record lost pairs');

const stringMap = measure(() => {
  const record = new Map();
  for (let i = 0; i < MESSAGES; i += 1) record.set(`bench\n${nonceOf(i)}`, tsOf(i) + WINDOW_MS);
  return record;
});

console.log(
  JSON.stringify({
    messages: MESSAGES,
    windowMs: WINDOW_MS,
    memory: { bytesPerMessage: memory.bytesPerMessage, tableBytes: memory.record.bytes },
    stringMap: { bytesPerMessage: stringMap.bytesPerMessage },
  }),
);
