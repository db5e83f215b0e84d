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
  // Exit now rather than when the event loop drains: after a TIMEOUT the client's close() only
  // half-closes the socket (Nest's ClientTCP calls end(), not destroy()), and a server that
  // never answers would keep this process waiting. Writes to pipes, files and terminals are
  // synchronous on Linux and macOS, so nothing printed is lost.
  process.exit(code);
});
