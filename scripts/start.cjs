#!/usr/bin/env node
// The service's entry for `npm start` and the container: plain JavaScript that any Node runs, so
// that a Node outside package.json's engines range gets one line naming the fix instead of a
// crash inside a native addon (better-sqlite3, bcrypt) built for another ABI. Then it loads the
// service in this same process: the signal npm (or the container runtime) sends reaches it.
'use strict';
const { existsSync, readFileSync } = require('node:fs');
const { join } = require('node:path');

const root = join(__dirname, '..');
const { engines } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
// engines.node is `>=MAJOR.MINOR <NEXT`: the one form this project writes.
const range = /^>=(\d+)\.(\d+) <(\d+)$/.exec(engines.node);
const [major, minor] = process.versions.node.split('.').map(Number);
if (
  range &&
  (major < Number(range[1]) ||
    (major === Number(range[1]) && minor < Number(range[2])) ||
    major >= Number(range[3]))
) {
  console.error(
    `PAI cannot start: Node ${process.versions.node} runs it, the service needs Node ${engines.node}; install that Node (nvm install 24) or run \`npm start\`, which uses the Node of the \`node\` devDependency`,
  );
  process.exit(1);
}
const main = join(root, 'dist', 'src', 'main.js');
if (!existsSync(main)) {
  console.error('PAI cannot start: not built; run `npm run build` (or `npm start`)');
  process.exit(1);
}
require(main);
