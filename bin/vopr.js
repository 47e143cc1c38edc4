#!/usr/bin/env node
// Entry point for vopr, the deterministic simulator: runs the compiled CLI (npm ci builds it
// through "prepare"). Exit code 70 means the simulator itself failed (docs/vopr.md).
import { main } from '../dist/cli/vopr.js';

main(process.argv).catch((error) => {
  process.stderr.write(`${error && error.stack ? error.stack : String(error)}\n`);
  process.exit(70);
});
