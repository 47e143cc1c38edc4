// The fixed seed sets that `npm test` runs through the VOPR (src/testing/vopr_seeds_*.test.ts):
// which seeds, how many replicas, which faults, how long. Faults default to what the replica in
// this tree survives with liveness (replica_adapter.ts supportedFaults), so the sets widen by
// themselves as the replica grows. Sized so that all sets together take well under a few minutes
// on 2 cores; `npm run vopr -- run` is the tool for long runs. The `forged` sets add the `forge`
// fault class (forger.ts: a stranger sending forged and extreme messages) on seeds of their own.

import { parseFaults } from './fault_plan.js';
import { supportedFaults } from './replica_adapter.js';
import { runSeed } from './simulator.js';
import type { RunOptions, RunResult } from './simulator.js';

export interface SeedSet {
  readonly name: string;
  readonly replicaCount: number;
  readonly faults: string;
  readonly seedFirst: number;
  readonly seedCount: number;
  readonly ticks: number;
}

export function seedSet(
  replicaCount: number,
  seedCount: number,
  ticks: number,
  forged = false,
): SeedSet {
  const faults = supportedFaults(replicaCount) + (forged ? ',forge' : '');
  return {
    name: `${replicaCount} replica(s), faults ${faults}`,
    replicaCount,
    faults,
    // Each set has its own seeds, so the sets together cover more of the seed space.
    seedFirst: 1_000 * replicaCount + (forged ? 100_000 : 0),
    seedCount,
    ticks,
  };
}

export const seedSets = {
  one: seedSet(1, 120, 2000),
  three: seedSet(3, 100, 2000),
  five: seedSet(5, 60, 2000),
  threeForged: seedSet(3, 40, 2000, true),
  fiveForged: seedSet(5, 30, 2000, true),
} as const;

export function seedOptions(set: SeedSet, seed: number): RunOptions {
  const faults = parseFaults(set.faults);
  if (typeof faults === 'string') throw new Error(faults);
  return { seed, replicaCount: set.replicaCount, faults, ticks: set.ticks };
}

/** Runs every seed of a set; returns the failures (with their reproduce commands). */
export function runSeedSet(set: SeedSet): { failures: RunResult[]; commits: number } {
  const failures: RunResult[] = [];
  let commits = 0;
  for (let i = 0; i < set.seedCount; i++) {
    const result = runSeed(seedOptions(set, set.seedFirst + i));
    commits += result.stats.commits;
    if (result.status !== 'ok') failures.push(result);
  }
  return { failures, commits };
}
