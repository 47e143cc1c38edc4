// The VOPR benchmark: how fast the simulator runs the real replica. For 1, 3 and 5 replicas it
// runs a fixed range of seeds (the faults each replica count supports, as `vopr run` defaults
// to) and prints simulated ticks per second, seeds per minute, per-seed wall time percentiles
// and a result hash over every run's trace hash (equal hashes mean identical runs). One core:
// `vopr run` is single-threaded too.
//
// It measures and prints; it never passes or fails on time (HOUSE_RULES §9).
//   node --import tsx bench/vopr.bench.ts            full run (about a minute)
//   node --import tsx bench/vopr.bench.ts --small    tiny run (src/testing/vopr_bench.test.ts
//                                                    runs it inside npm test so it cannot rot)

import { pathToFileURL } from 'node:url';
import { parseFaults } from '../src/testing/fault_plan.js';
import { TraceHash } from '../src/testing/deep.js';
import { supportedFaults } from '../src/testing/replica_adapter.js';
import { runSeed } from '../src/testing/simulator.js';

export interface VoprBenchRow {
  readonly replicas: number;
  readonly faults: string;
  readonly seeds: number;
  readonly failed: number;
  readonly ticks: number;
  readonly seconds: number;
  readonly ticksPerSecond: number;
  readonly seedsPerMinute: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly resultHash: string;
}

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? 0;
}

export function benchReplicaCount(replicas: number, seeds: number, ticks: number): VoprBenchRow {
  const faultText = supportedFaults(replicas);
  const faults = parseFaults(faultText);
  if (typeof faults === 'string') throw new Error(faults);
  const hash = new TraceHash();
  const durations: number[] = [];
  let totalTicks = 0;
  let failed = 0;
  const started = performance.now();
  for (let seed = 1; seed <= seeds; seed++) {
    const t0 = performance.now();
    const result = runSeed({ seed, replicaCount: replicas, faults, ticks });
    durations.push(performance.now() - t0);
    totalTicks += result.ticks;
    if (result.status !== 'ok') failed += 1;
    hash.add(result.traceHash);
  }
  const seconds = (performance.now() - started) / 1000;
  durations.sort((a, b) => a - b);
  return {
    replicas,
    faults: faultText,
    seeds,
    failed,
    ticks: totalTicks,
    seconds,
    ticksPerSecond: totalTicks / seconds,
    seedsPerMinute: (seeds / seconds) * 60,
    p50Ms: percentile(durations, 0.5),
    p99Ms: percentile(durations, 0.99),
    resultHash: hash.digest(),
  };
}

export function runVoprBench(small: boolean): VoprBenchRow[] {
  const seeds = small ? 2 : 100;
  const ticks = small ? 200 : 1000;
  return [1, 3, 5].map((replicas) => benchReplicaCount(replicas, seeds, ticks));
}

export function formatRow(row: VoprBenchRow): string {
  return (
    `${row.replicas} replica(s) [${row.faults}]: ${row.seeds} seeds, ` +
    `${Math.round(row.ticks / row.seeds)} ticks each on average, in ` +
    `${row.seconds.toFixed(2)} s: ${Math.round(row.ticksPerSecond)} ticks/s, ` +
    `${Math.round(row.seedsPerMinute)} seeds/min, per seed p50 ${row.p50Ms.toFixed(1)} ms ` +
    `p99 ${row.p99Ms.toFixed(1)} ms, ${row.failed} failed, result ${row.resultHash}`
  );
}

const invokedDirectly =
  process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href;
if (invokedDirectly) {
  const small = process.argv.includes('--small');
  for (const row of runVoprBench(small)) process.stdout.write(`${formatRow(row)}\n`);
}
