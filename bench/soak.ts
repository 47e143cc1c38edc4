// The soak (issue 16): a 3-replica cluster held at 80% of its peak for a long run, to show that
// it does not flap — no view change under steady load, GC pauses and fsync variance included.
//
// It finds the peak with a short closed-loop run (one event of 100 bytes per request, 256
// sessions), then offers 80% of it open-loop, minute by minute (a fresh paced run per minute, so
// the loader's latency list stays small), and after each minute reads every replica's view. It
// prints one line per minute (events/s, p50, p99, views) and, last, the number of view changes:
// the sum over replicas of how far each one's view moved (a replica that restarted would show
// as a missing status, counted apart). It never fails on what it measures.
//
//   npm run soak [-- --minutes N] [--json]     (default 30 minutes; --small: 3 × 5 s)
// With --json the last line is {soak_view_changes, soak_minutes, soak_offered_events_per_s,
// soak_p99_ms_max, soak_p99_ms_median, soak_unreachable_count}.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BenchCluster } from './cluster_process.js';
import { createBenchStream, runLoad, runPacedLoad } from './loader.js';

const argv = process.argv.slice(2);
const small = argv.includes('--small');
const minutesFlag = argv.indexOf('--minutes');
const minutes = small ? 3 : minutesFlag >= 0 ? Number(argv[minutesFlag + 1]) : 30;
const periodMs = small ? 5_000 : 60_000;
const loadShare = 0.8;
const shape = { eventsPerAppend: 1, eventSizeBytes: 100, connectionCount: 8 };

if (!Number.isInteger(minutes) || minutes < 1) {
  console.error('usage: soak [--minutes N] [--json] [--small]   (N a whole number ≥ 1)');
  process.exit(2);
}

async function views(cluster: BenchCluster): Promise<(number | null)[]> {
  const statuses = await Promise.all(cluster.addresses.map((_, id) => cluster.status(id)));
  return statuses.map((status) => (status === null ? null : status.view));
}

function round(value: number): number {
  return Math.round(value * 1000) / 1000;
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? 0;
}

async function main(): Promise<void> {
  const root = await mkdtemp(join(tmpdir(), 'kmb-soak-'));
  const cluster = await BenchCluster.start(join(root, 'kmb'), 3, { name: 'soak' });
  try {
    const { leader } = await cluster.waitForLeader();
    const address = cluster.addresses[leader] ?? '';
    const stream = await createBenchStream(address);
    const peakSpec = { ...shape, sessions: 256, durationMs: small ? 1_000 : 5_000 };
    const peak = await runLoad(address, peakSpec, stream);
    const rate = Math.max(1, Math.round(peak.eventsPerSecond * loadShare));
    console.log(
      `peak ${Math.round(peak.eventsPerSecond)} events/s; offering ${rate} events/s ` +
        `(${loadShare * 100}%) for ${minutes} × ${periodMs / 1000} s`,
    );
    const first = await views(cluster);
    let previous = first;
    let viewChanges = 0;
    let unreachable = 0;
    const p99s: number[] = [];
    for (let period = 1; period <= minutes; period++) {
      const spec = { ...shape, sessions: 256, durationMs: periodMs, eventsPerSecond: rate };
      const run = await runPacedLoad(address, spec, stream);
      const now = await views(cluster);
      now.forEach((view, i) => {
        const before = previous[i];
        if (view === null || before === null || before === undefined) unreachable += 1;
        else viewChanges += view - before;
      });
      previous = now.map((view, i) => view ?? previous[i] ?? null);
      p99s.push(run.p99Ms);
      console.log(
        `${String(period).padStart(3)}: ${Math.round(run.eventsPerSecond)} events/s, p50 ` +
          `${run.p50Ms.toFixed(2)} ms, p99 ${run.p99Ms.toFixed(2)} ms, views ${now.join('/')}`,
      );
    }
    console.log(`view changes during the soak: ${viewChanges} (unreachable reads: ${unreachable})`);
    if (argv.includes('--json')) {
      console.log(
        JSON.stringify({
          soak_view_changes: viewChanges,
          soak_minutes: small ? (minutes * periodMs) / 60_000 : minutes,
          soak_offered_events_per_s: rate,
          soak_p99_ms_max: round(Math.max(...p99s)),
          soak_p99_ms_median: round(median(p99s)),
          soak_unreachable_count: unreachable,
        }),
      );
    }
  } finally {
    await cluster.stop();
    await rm(root, { recursive: true, force: true });
  }
}

await main();
