#!/usr/bin/env node
// `npm run bench`: every benchmark, one after another, on this machine in one run — the
// simulator (simulated ticks/s, seeds/min), the throughput benchmark against a real server and
// its disk peer, 3 replicas side by side with a 3-member etcd cluster (bench/compare.ts; etcd and
// wrk from apt, skipped with a printed reason when absent), and failover (leader SIGKILL → first
// acknowledged write) over 20 trials, with leader SIGSTOP and backup restarts besides, restart
// time with 100K and 1M events, the heap
// allocation per request and per event on each replica (bench/allocation.ts), and the timeline
// of one request in flight (bench/timeline.ts), and reads of long streams after a restart
// (bench/stream_read.ts). The soak is `npm run soak` (bench/soak.ts).
// Flags: --quick (shorter runs), --small (the tiny run `npm test` uses so nothing rots),
// --json (each benchmark prints its JSON object as its last line; this script merges them into
// one object, printed as the very last line).
import { spawnSync } from 'node:child_process';

const args = process.argv.slice(2);
const json = args.includes('--json');
const short = args.includes('--quick') || args.includes('--small');
const small = args.includes('--small');
const passed = args.filter((arg) => ['--quick', '--small', '--json'].includes(arg));

/** Each benchmark: its file and the arguments it gets (besides --json). */
const benchmarks = [
  { file: 'bench/vopr.bench.ts', extra: short ? ['--small'] : [], json: false },
  { file: 'bench/run.ts', extra: passed.filter((arg) => arg !== '--json'), json: true },
  { file: 'bench/compare.ts', extra: passed.filter((arg) => arg !== '--json'), json: true },
  { file: 'bench/restart.ts', extra: small ? ['--small'] : [], json: true },
  // heap bytes allocated per request and per event on each replica (V8's --trace-gc-nvp).
  { file: 'bench/allocation.ts', extra: passed.filter((a) => a !== '--json'), json: true },
  // telemetry on vs off; its JSON adds telemetry_overhead_ratio (events/s on / off).
  { file: 'bench/telemetry_overhead.ts', extra: passed.filter((a) => a !== '--json'), json: true },
  // one request in flight: where its time goes, step by step, on every replica and in the SDK.
  {
    file: 'bench/timeline.ts',
    extra: short ? (small ? ['--small'] : ['--quick']) : [],
    json: true,
  },
  // reads of long streams after a restart; its JSON adds stream_read_events_per_s and
  // stream_read_tail_ms.
  { file: 'bench/stream_read.ts', extra: passed.filter((a) => a !== '--json'), json: true },
  // the 30-minute soak is `npm run soak`; its 15-second form runs here so it cannot rot.
  ...(small ? [{ file: 'bench/soak.ts', extra: ['--small'], json: true }] : []),
  {
    file: 'bench/failover.ts',
    extra: small ? ['--small'] : args.includes('--quick') ? ['--trials', '3'] : [],
    json: true,
  },
];

const merged = {};
for (const bench of benchmarks) {
  const extra = json && bench.json ? [...bench.extra, '--json'] : bench.extra;
  const result = spawnSync(process.execPath, ['--import', 'tsx', bench.file, ...extra], {
    stdio: ['inherit', json && bench.json ? 'pipe' : 'inherit', 'inherit'],
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  if (json && bench.json) {
    const lines = (result.stdout ?? '').trimEnd().split('\n');
    const last = lines.pop() ?? '';
    if (lines.length > 0) process.stdout.write(`${lines.join('\n')}\n`);
    if (result.status === 0) Object.assign(merged, JSON.parse(last));
    else process.stdout.write(`${last}\n`);
  }
  if (result.status !== 0) {
    process.stderr.write(`bench: ${bench.file} failed (exit ${String(result.status)})\n`);
    process.exit(result.status ?? 1);
  }
}
if (json) process.stdout.write(`${JSON.stringify(merged)}\n`);
