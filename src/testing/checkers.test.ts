// Proves that each VOPR checker fires on the bug it exists for, independently of the replica's
// canaries: first on hand-made inputs to the cluster-wide history checker, then on whole runs
// of the real replica under a deliberately broken simulated SHELL (cluster.ts ShellMutation),
// where the named checker — and no other — must report the violation. Runs without a mutation
// pass, so the violations come from the mutations.

import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { clusterIdFromName, makePrepare, rootPrepare } from '../core/header.js';
import type { Prepare } from '../core/header.js';
import { asOp, asReplicaIndex, asTimestampUs, asView } from '../core/types.js';
import { SafetyChecker } from './checkers.js';
import type { CheckerName } from './checkers.js';
import type { ShellMutation } from './cluster.js';
import { parseFaults } from './fault_plan.js';
import { runSeed } from './simulator.js';
import type { RunOptions } from './simulator.js';

const cluster = clusterIdFromName('checkers');

function prepare(op: number, parent: Uint8Array, timestampUs: number, body = op): Prepare {
  return makePrepare(
    {
      replica: asReplicaIndex(0),
      cluster,
      view: asView(0),
      requestCount: 1,
      op: asOp(op),
      commit: asOp(op - 1),
      timestampUs: asTimestampUs(timestampUs),
      parent,
    },
    Uint8Array.of(body),
  );
}

describe('SafetyChecker', () => {
  const root = rootPrepare(cluster).header.checksum;
  const p1 = prepare(1, root, 100);
  const p2 = prepare(2, p1.header.checksum, 200);

  it('accepts replicas that commit the same history with a durable quorum', () => {
    // Proves no false alarm: identical histories with durable quorums pass.
    const checker = new SafetyChecker(2, () => 2);
    for (const replica of [0, 1, 2]) {
      checker.onCommitted(replica, 1, 1, p1);
      checker.onCommitted(replica, 2, 2, p2);
    }
    assert.equal(checker.violation, null);
    assert.equal(checker.committedOpMax, 2);
  });

  it('reports a divergent commit, a skipped op and a timestamp going backwards', () => {
    // Proves committed_history fires on each of its three properties.
    const divergent = new SafetyChecker(2, () => 2);
    divergent.onCommitted(0, 1, 1, p1);
    divergent.onCommitted(1, 1, 1, prepare(1, root, 100, 9));
    assert.equal(divergent.violation?.checker, 'committed_history');
    const skipped = new SafetyChecker(2, () => 2);
    skipped.onCommitted(0, 2, 1, p2);
    assert.equal(skipped.violation?.checker, 'committed_history');
    const backwards = new SafetyChecker(2, () => 2);
    backwards.onCommitted(0, 1, 1, p1);
    backwards.onCommitted(0, 2, 2, prepare(2, p1.header.checksum, 50));
    assert.equal(backwards.violation?.checker, 'committed_history');
  });

  it('reports a commit without a durable quorum, and differing kernel states', () => {
    // Proves quorum_durability and state_digest fire on their inputs.
    const early = new SafetyChecker(2, () => 1);
    early.onCommitted(0, 1, 1, p1);
    assert.equal(early.violation?.checker, 'quorum_durability');
    const digests = new SafetyChecker(2, () => 2);
    digests.onStateBoundary(0, 5, 'aa');
    digests.onStateBoundary(1, 5, 'aa');
    assert.equal(digests.violation?.checker, undefined);
    digests.onStateBoundary(2, 5, 'bb');
    assert.equal(digests.violation?.checker, 'state_digest');
  });
});

describe('checkers against a broken shell', () => {
  const cases: [ShellMutation, number, string, CheckerName][] = [
    ['durable_before_fsync', 3, 'none', 'quorum_durability'],
    ['forget_journal', 1, 'crash', 'acked_writes'],
    ['apply_twice', 3, 'none', 'exactly_once'],
    ['stale_reads', 1, 'none', 'linearizability'],
    ['wrong_stale_reads', 3, 'none', 'stale_reads'],
  ];
  for (const [mutation, replicaCount, faultText, expected] of cases) {
    it(`${mutation} is caught by ${expected}`, () => {
      // Proves, on whole runs, that this checker (and no other) catches this shell bug, on a
      // seed that passes without it.
      const faults = parseFaults(faultText);
      assert.ok(typeof faults !== 'string');
      let caught: string | null = null;
      for (let seed = 1; seed <= 30 && caught === null; seed++) {
        const options: RunOptions = { seed, replicaCount, faults, ticks: 600 };
        const broken = runSeed({ ...options, mutation });
        if (broken.status === 'ok') continue;
        assert.equal(runSeed(options).status, 'ok', `seed ${seed} passes without the mutation`);
        assert.equal(broken.status, 'safety', broken.message);
        assert.equal(broken.checker, expected, broken.message);
        caught = broken.message;
      }
      assert.ok(caught !== null, `no seed caught ${mutation}`);
    });
  }
});
