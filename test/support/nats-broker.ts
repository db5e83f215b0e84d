import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { waitFor } from './wait-for';

/**
 * A private nats-server on a loopback port, for tests that stop it or configure it (the shared one
 * on 4222 serves the other suites). `config` is a configuration file, `env` its `$NAME` values.
 */
export async function startNatsBroker(
  port: number,
  options: { config?: string; env?: Record<string, string> } = {},
): Promise<ChildProcess> {
  const child = spawn(
    '/usr/sbin/nats-server',
    [
      ...(options.config ? ['-c', options.config] : []),
      '-a',
      '127.0.0.1',
      '-p',
      String(port),
    ],
    { stdio: ['ignore', 'ignore', 'pipe'], env: options.env },
  );
  let log = '';
  child.stderr.on('data', (chunk: Buffer) => (log += chunk.toString()));
  await waitFor(
    () => `nats-server to start:\n${log}`,
    () => {
      if (child.exitCode !== null) throw new Error(`nats-server: ${log}`);
      return log.includes('Server is ready');
    },
  );
  return child;
}

export async function stopNatsBroker(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  child.kill('SIGKILL');
  await once(child, 'exit');
}
