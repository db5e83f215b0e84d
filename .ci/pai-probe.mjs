#!/usr/bin/env node
// A stand-in for the `pai` command-line client (src/cli, being written on another branch), with
// the same verbs and conventions the container probe needs, built on the project's client module:
//   pai-probe.mjs [--host H] [--port P] [--json] register <user> | login <user> | pay <amount> [--ref R] [--desc D]
// The password is read from standard input; the session token is kept in a 0600 file
// (PAI_SESSION_FILE); the key is the first of PAI_MAC_KEYS. When the CLI lands, .ci/container calls
// `npx pai` instead and this file goes.
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createPaiClient } from '../dist/src/index.js';

const args = process.argv.slice(2);
const option = (name) => {
  const at = args.indexOf(name);
  if (at < 0) return undefined;
  const [, value] = args.splice(at, 2);
  return value;
};
const flag = (name) => {
  const at = args.indexOf(name);
  if (at >= 0) args.splice(at, 1);
  return at >= 0;
};
const host = option('--host') ?? process.env.PAI_HOST ?? '127.0.0.1';
const port = Number(option('--port') ?? process.env.PAI_PORT ?? 8080);
const ref = option('--ref');
const desc = option('--desc');
const json = flag('--json');
const [verb, operand] = args;

const keys = process.env.PAI_MAC_KEYS;
if (!keys) throw new Error('PAI_MAC_KEYS is not set');
const [kid, secret] = keys.split(',')[0].split(':');
const sessionFile = process.env.PAI_SESSION_FILE ?? join(tmpdir(), 'pai-probe-session');
const password = () => readFileSync(0, 'utf8').replace(/\r?\n$/, '');

const client = createPaiClient({ host, port, kid, secret, timeoutMs: 10_000 });
try {
  let result;
  switch (verb) {
    case 'register':
      result = await client.send('auth.register', { username: operand, password: password() });
      break;
    case 'login': {
      result = await client.send('auth.login', { username: operand, password: password() });
      writeFileSync(sessionFile, result.token, { mode: 0o600 });
      chmodSync(sessionFile, 0o600);
      result = { userId: result.userId, expiresAt: result.expiresAt };
      break;
    }
    case 'pay': {
      const token = readFileSync(sessionFile, 'utf8');
      result = await client.send('transactions.create', {
        token,
        amount: operand,
        ...(ref ? { reference: ref } : {}),
        ...(desc ? { description: desc } : {}),
      });
      break;
    }
    default:
      throw new Error(`unknown verb ${verb}`);
  }
  console.log(json ? JSON.stringify(result) : `${verb}: ok ${JSON.stringify(result)}`);
} catch (error) {
  console.error(`${verb}: ${error.code ?? 'ERROR'} ${error.message}`);
  process.exitCode = 1;
} finally {
  await client.close();
}
