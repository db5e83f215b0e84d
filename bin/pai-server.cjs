#!/usr/bin/env node
// The `pai-server` bin (operator commands: `pai-server ledger verify`). Outside dist/, so that
// it exists before a build and can say how to make one.
'use strict';
const { existsSync } = require('node:fs');
const { join } = require('node:path');

const main = join(__dirname, '..', 'dist', 'src', 'ledger', 'pai-server.js');
if (!existsSync(main)) {
  console.error('pai-server: not built yet; run `npm run build` in the project first');
  process.exit(4);
}
require(main);
