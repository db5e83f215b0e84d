#!/usr/bin/env bash
# The client package as a stranger gets it: `npm pack -w @pai/client`, the tarball installed into
# a throwaway Nest application in a temporary directory, compiled by tsc against the package's
# types, then run against the built service: system.ping, auth.register, auth.login and
# transactions.create through PaiClientModule.registerAsync. Prints the tarball's size and file
# count and the installed size. CI runs it (.ci/run); it needs `npm run build` first.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
work=$(mktemp -d)
service_pid=
cleanup() {
  [[ -n "$service_pid" ]] && kill "$service_pid" 2>/dev/null && wait "$service_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "consumer-app: $*" >&2; exit 1; }
step() { printf -- '--- %s\n' "$*"; }

step "1. npm pack -w @pai/client"
npm pack -w @pai/client --pack-destination "$work" --json >"$work/pack.json" 2>"$work/pack.err" ||
  { cat "$work/pack.err"; fail "npm pack failed"; }
tarball=$(node -e 'const [p]=require(process.argv[1]); console.log(p.filename)' "$work/pack.json")
node -e '
  const [p] = require(process.argv[1]);
  const files = p.files.map((f) => f.path);
  console.log(`tarball ${p.filename}: ${(p.size / 1024).toFixed(1)} kB packed, ${(p.unpackedSize / 1024).toFixed(1)} kB unpacked, ${p.entryCount} files`);
  // Only what a client needs: no tests, benches, sources, maps or server code.
  const stray = files.filter((f) => /\.spec\.|(^|\/)test\/|(^|\/)bench\/|(^|\/)src\/|\.map$|tsbuildinfo/.test(f));
  if (stray.length > 0) { console.error(`unexpected files in the tarball: ${stray.join(", ")}`); process.exit(1); }
  for (const needed of ["package.json", "LICENSE", "bin/pai.cjs", "dist/index.js", "dist/index.d.ts", "dist/cli/main.js"]) {
    if (!files.includes(needed)) { console.error(`missing from the tarball: ${needed}`); process.exit(1); }
  }
' "$work/pack.json"

step "2. a Nest application in $work/app, the tarball installed"
mkdir -p "$work/app/src"
cd "$work/app"
cat >package.json <<'JSON'
{ "name": "pai-consumer", "version": "1.0.0", "private": true, "license": "Apache-2.0" }
JSON
# The peers at the majors the package declares; the npm cache makes this an offline install on
# a machine that installed the project.
npm install --no-audit --no-fund --prefer-offline --loglevel=error \
  "$work/$tarball" @nestjs/common@12 @nestjs/core@12 @nestjs/microservices@12 \
  rxjs@7 reflect-metadata@0.2 typescript@~6.0 @types/node@24 >"$work/install.log" 2>&1 ||
  { cat "$work/install.log"; fail "npm install failed"; }
echo "installed: @pai/client $(du -sk --apparent-size node_modules/@pai/client | cut -f1) kB;" \
  "with its own dependencies $(du -skc --apparent-size node_modules/@pai/client node_modules/canonicalize node_modules/@nats-io | tail -1 | cut -f1) kB;" \
  "the whole application with Nest $(du -sk --apparent-size node_modules | cut -f1) kB"
for server_only in typeorm mysql2 bcrypt better-sqlite3 ioredis pino; do
  [[ -e node_modules/$server_only ]] && fail "the client pulled in the service's $server_only"
done

cat >tsconfig.json <<'JSON'
{
  "compilerOptions": {
    "module": "nodenext",
    "moduleResolution": "nodenext",
    "target": "ES2022",
    "strict": true,
    "experimentalDecorators": true,
    "emitDecoratorMetadata": true,
    "rootDir": "src",
    "outDir": "dist",
    "types": ["node"]
  },
  "include": ["src"]
}
JSON
cat >src/main.ts <<'TS'
import 'reflect-metadata';
import { Injectable, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import {
  PaiClient,
  PaiClientError,
  PaiClientModule,
  type TransactionReply,
} from '@pai/client';

@Injectable()
class Settings {
  readonly port = Number(process.env.PAI_PORT);
  readonly secret = process.env.PAI_SECRET ?? '';
}

@Module({ providers: [Settings], exports: [Settings] })
class SettingsModule {}

@Injectable()
class Billing {
  constructor(private readonly pai: PaiClient) {}

  async run(): Promise<TransactionReply> {
    const ping = await this.pai.send('system.ping', {});
    console.log(`system.ping: serverTime ${ping.serverTime}`);
    const username = `consumer${Date.now()}`;
    const password = 'a long enough password';
    await this.pai.send('auth.register', { username, password });
    const { token } = await this.pai.send('auth.login', { username, password });
    const { transaction, created } = await this.pai.send('transactions.create', {
      token,
      amount: '12.50',
      reference: 'consumer:1',
    });
    console.log(`transactions.create: #${transaction.id} ${transaction.amount} created=${created}`);
    return transaction;
  }
}

@Module({
  imports: [
    PaiClientModule.registerAsync({
      imports: [SettingsModule],
      inject: [Settings],
      useFactory: (settings: Settings) => ({
        host: '127.0.0.1',
        port: settings.port,
        kid: 'consumer',
        secret: settings.secret,
      }),
    }),
  ],
  providers: [Billing],
})
class AppModule {}

async function main(): Promise<void> {
  const app = await NestFactory.createApplicationContext(AppModule, { logger: false });
  try {
    const transaction = await app.get(Billing).run();
    if (transaction.amount !== '12.50') throw new Error('wrong amount');
  } catch (error) {
    console.error(error instanceof PaiClientError ? `${error.code}: ${error.message}` : error);
    process.exitCode = 1;
  } finally {
    await app.close();
  }
}

void main();
TS

step "3. tsc against the package's types"
npx tsc -p tsconfig.json || fail "the application does not compile against @pai/client's types"

step "4. the service, built, on a free port"
port=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
secret=$(node -e 'console.log(require("crypto").randomBytes(32).toString("base64"))')
pepper=$(node -e 'console.log(require("crypto").randomBytes(32).toString("base64"))')
ledger_key=$(node -e 'console.log(require("crypto").randomBytes(32).toString("base64"))')
PAI_PORT=$port PAI_HTTP_PORT=0 PAI_DATA_DIR="$work/data" PAI_MAC_KEYS="consumer:$secret" \
  PAI_PASSWORD_PEPPER="$pepper" PAI_LEDGER_KEY="$ledger_key" \
  node "$root/scripts/start.cjs" >"$work/service.log" 2>&1 &
service_pid=$!
for _ in $(seq 1 100); do
  grep -q 'listening on' "$work/service.log" && break
  kill -0 "$service_pid" 2>/dev/null || { cat "$work/service.log"; fail "the service stopped"; }
  sleep 0.2
done
grep -q 'listening on' "$work/service.log" || fail "the service did not listen"

step "5. the application against it: system.ping, transactions.create"
PAI_PORT=$port PAI_SECRET=$secret node dist/main.js | tee "$work/run.log"
grep -q '^system.ping: serverTime [0-9]' "$work/run.log" || fail "no ping"
grep -q '^transactions.create: #[0-9]* 12.50 created=true$' "$work/run.log" || fail "no transaction"

step "6. the packed CLI: npx pai"
PAI_PORT=$port PAI_MAC_KEYS="consumer:$secret" npx --no-install pai ping
echo "consumer-app: passed"
