import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { track } from '../processes';
import type { NonceMemory } from '../report';

/** Bytes per message held by the memory record, measured in a process of its own. */
export function nonceMemory(): Promise<NonceMemory> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ['--expose-gc', join(__dirname, '..', 'nonce-memory.mts')],
      {
        cwd: join(__dirname, '..', '..'),
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    track(child);
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.once('error', reject);
    child.once('exit', (code) =>
      code === 0
        ? resolve(JSON.parse(output) as NonceMemory)
        : reject(new Error(`bench/nonce-memory.mts exited ${code}`)),
    );
  });
}
