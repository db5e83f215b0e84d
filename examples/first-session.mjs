// A first session against a running PAI service, through the client module other Nest services
// use. Run it with `npm run demo` after `npm start` (it reads the development key that the
// service generated into PAI_DATA_DIR; set PAI_MAC_KEYS to use another).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createPaiClient } from '@pai/client';

const dataDir = process.env.PAI_DATA_DIR ?? 'data';
const keys =
  process.env.PAI_MAC_KEYS ??
  JSON.parse(readFileSync(join(dataDir, 'dev-secrets.json'), 'utf8')).PAI_MAC_KEYS;
const [kid, secret] = keys.split(',')[0].split(':');

const client = createPaiClient({
  host: process.env.PAI_HOST ?? '127.0.0.1',
  port: Number(process.env.PAI_PORT ?? 8080),
  kid,
  secret,
});

const show = (label, value) => console.log(`${label.padEnd(22)} ${JSON.stringify(value)}`);

try {
  const username = `demo-${Date.now().toString(36)}`;
  const password = 'correct horse battery staple';
  show('system.ping', await client.send('system.ping', {}));
  show('auth.register', await client.send('auth.register', { username, password }));
  const session = await client.send('auth.login', { username, password });
  show('auth.login', { ...session, token: `${session.token.slice(0, 6)}…` });
  const { token } = session;
  show('transactions.create', await client.send('transactions.create', {
    token, amount: '12.50', reference: 'demo:1', description: 'first payment',
  }));
  show('same reference again', await client.send('transactions.create', {
    token, amount: '12.50', reference: 'demo:1', description: 'first payment',
  }));
  await client.send('transactions.create', { token, amount: '0.30' });
  show('transactions.list', await client.send('transactions.list', { token, limit: 10 }));
  show('users.me', await client.send('users.me', { token }));
  show('auth.logout', await client.send('auth.logout', { token }));
} catch (error) {
  console.error(`failed: ${error.code ?? ''} ${error.message}`);
  process.exitCode = 1;
} finally {
  await client.close();
}
