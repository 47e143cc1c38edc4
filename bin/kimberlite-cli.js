#!/usr/bin/env node
// Entry point for kimberlite-cli: runs the compiled CLI (npm ci builds it through "prepare").
import { main } from '../dist/cli/cli.js';

main(process.argv).catch((error) => {
  process.stderr.write(`${error && error.stack ? error.stack : String(error)}\n`);
  process.exit(70);
});
