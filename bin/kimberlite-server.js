#!/usr/bin/env -S node --initial-old-space-size=128
// Entry point for kimberlite-server: runs the compiled CLI (npm ci builds it through "prepare").
import { main } from '../dist/cli/server.js';

main(process.argv).catch((error) => {
  process.stderr.write(`${error && error.stack ? error.stack : String(error)}\n`);
  process.exit(70);
});
