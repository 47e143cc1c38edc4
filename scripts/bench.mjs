#!/usr/bin/env node
// `npm run bench`: the simulator benchmark (simulated ticks/s, seeds/min), then the throughput
// benchmark against a real server. Arguments are passed to the throughput benchmark
// (--quick, --json, --small); --quick and --small also shorten the simulator run. The throughput
// benchmark runs last so that with --json its JSON object is the last line printed.
import { spawnSync } from 'node:child_process';

const args = process.argv.slice(2);
const short = args.includes('--quick') || args.includes('--small');
const run = (file, extra) => {
  const result = spawnSync(process.execPath, ['--import', 'tsx', file, ...extra], {
    stdio: 'inherit',
  });
  if (result.status !== 0) process.exit(result.status ?? 1);
};
run('bench/vopr.bench.ts', short ? ['--small'] : []);
run('bench/run.ts', args);
