// The canary run: proves the checkers bite. Each canary switches on a known bug in the replica
// (ReplicaOptions.canary); the VOPR must catch every one with a safety checker (or a replica
// assertion) on a seed where the same run without the canary passes. A canary the replica does
// not implement yet (its option changes nothing) is reported as skipped with that reason — it is
// never counted as caught; `vopr canary` exits non-zero for it.

import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { runCanary } from './canary.js';
import { canaryNames } from './replica_adapter.js';

describe('VOPR canaries', () => {
  for (const canary of canaryNames) {
    it(`catches ${canary}`, (t) => {
      // Proves a checker catches this canary on some seed where the run without it passes.
      const outcome = runCanary(canary, { seedStart: 1, seedCount: 40 });
      if (outcome.status === 'not_available') {
        t.skip(`not available: ${outcome.message}`);
        return;
      }
      assert.equal(outcome.status, 'caught', outcome.message);
      t.diagnostic(`caught by ${outcome.checker ?? '-'} at seed ${outcome.seed ?? '-'}`);
    });
  }
});
