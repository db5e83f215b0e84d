import { Logger } from '@nestjs/common';
import { TEST_FAILED } from './environment';
import { nestLog } from './nest-log';

// Every test file, unit specs included: code that logs through Nest's Logger outside a test app.
Logger.overrideLogger(nestLog);

beforeEach(() => nestLog.clear());

// A failed test shows the warnings and errors Nest logged meanwhile (an INTERNAL's stack, say).
afterEach(() => {
  if (!(globalThis as Record<string, unknown>)[TEST_FAILED]) return;
  const lines = nestLog.entries
    .filter(({ level }) => ['warn', 'error', 'fatal'].includes(level))
    .map(({ level, context, text }) => `  ${level} [${context}] ${text}`);
  if (lines.length === 0) return;
  const test = expect.getState().currentTestName;
  process.stderr.write(`\nNest's log during "${test}":\n${lines.join('\n')}\n`);
});
