#!/usr/bin/env node
/** The `pai` command (bin/pai.cjs loads the compiled copy of this file). */
import { runCli } from './cli';

void runCli({
  argv: process.argv.slice(2),
  env: process.env,
  stdin: process.stdin,
  stdout: process.stdout,
  stderr: process.stderr,
}).then((code) => {
  process.exitCode = code;
});
