// The VOPR's fixed seeds for five replicas: proves that the real replica over the real kernel
// keeps every safety property (committed history, quorum durability, state digests, exactly
// once, acknowledged writes, linearizability) and stays live under the faults it supports, for
// every seed of the set. A failure lists each failing seed with its one-line reproduce command.

import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { runSeedSet, seedSets } from './seed_sets.js';

describe('VOPR seeds', () => {
  const set = seedSets.five;
  it(`${set.seedCount} seeds, ${set.name}, ${set.ticks} ticks`, () => {
    // Proves every seed of the set passes every checker, including liveness.
    const { failures, commits } = runSeedSet(set);
    const report = failures
      .map((f) => `seed ${f.seed}: ${f.status} (${f.checker}): ${f.message}\n  ${f.reproduce}`)
      .join('\n');
    assert.equal(failures.length, 0, report);
    assert.ok(commits > set.seedCount * 10, `the workload made progress (${commits} commits)`);
  });
});
