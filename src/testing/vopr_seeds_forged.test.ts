// The VOPR's fixed seeds with the `forge` fault class on top of every other one (forger.ts): a
// stranger on the replica network sends forged and extreme messages (views past the wire's u32,
// commits of 10^9, far-ahead view changes, prepares failing their checksums, from any sender).
// Proves that for every seed of the 3- and 5-replica sets no replica throws, every safety
// checker passes and the cluster is live once faults stop. Before issue 14 the first seeds
// failed with a replica crash ("u32 out of range" is the codec's; here: an assertion, a stuck
// replica, or a liveness failure).

import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { runSeedSet, seedSets } from './seed_sets.js';

describe('VOPR seeds with forged messages', () => {
  for (const set of [seedSets.threeForged, seedSets.fiveForged]) {
    it(`${set.seedCount} seeds, ${set.name}, ${set.ticks} ticks`, () => {
      // Proves every seed of the set passes every checker, including liveness.
      const { failures, commits } = runSeedSet(set);
      const report = failures
        .map((f) => `seed ${f.seed}: ${f.status} (${f.checker}): ${f.message}\n  ${f.reproduce}`)
        .join('\n');
      assert.equal(failures.length, 0, report);
      assert.ok(commits > set.seedCount * 10, `the workload made progress (${commits} commits)`);
    });
  }
});
