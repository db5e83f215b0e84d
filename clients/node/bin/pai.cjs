#!/usr/bin/env node
// The `pai` bin. It lives outside dist/ so that it stays executable when a build empties dist/
// (npm sets the executable bit of a bin only when it links it, not after `npm run build`).
'use strict';
const { existsSync } = require('node:fs');
const { join } = require('node:path');

const main = join(__dirname, '..', 'dist', 'cli', 'main.js');
if (!existsSync(main)) {
  console.error(
    'pai: not built yet; run `npm run build` in the project first',
  );
  process.exit(4);
}
require(main);
