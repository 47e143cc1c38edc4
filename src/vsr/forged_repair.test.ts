// Proves that a forged repair_prepare cannot crash a normal primary. A normal primary's log is
// whole (it holds every op of its view, and its pipeline is exactly its uncommitted ops), so a
// repair_prepare of an op beyond its head, in its own view, comes from no honest peer: a backup
// vouches in the same view only for ops of the primary's log. Before the fix the primary put such
// a prepare in its log as pending, and the invariants after onMessage failed with "the pipeline
// spans the uncommitted" (found by byzantine.test.ts's property, fast-check seed -683547058, about
// one run in ten). The test settles a 3-replica cluster, hands the primary such a prepare (a
// valid header, any parent; 1, 2 and 5 ops beyond its head) from a backup's index, and checks that the primary stays normal,
// ignores it, and commits the next command.

import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { makePrepare } from '../core/header.js';
import { asOp, asReplicaIndex, asTimestampUs, asView } from '../core/types.js';
import type { ReplicaMessage } from './message.js';
import { Scenario, testCluster } from './testing_harness.test-support.js';

describe('a forged repair_prepare at a normal primary', () => {
  // One op beyond the head does not continue the chain and is dropped at once; two ops beyond
  // would wait in the log for the op before it.
  for (const gap of [1, 2, 5]) {
    it(`${gap} op(s) beyond its head is ignored`, () => {
      const t = new Scenario({ replicaCount: 3, seed: 1 });
      const c = t.client().register().command(3);
      t.runUntil(() => c.idle, 'the first command');
      const node = t.nodes[0];
      assert.ok(node !== undefined);
      const primary = node.r;
      assert.equal(primary.status, 'normal');
      assert.equal(primary.isPrimary, true);
      const opBefore = primary.op;
      const prepare = makePrepare(
        {
          replica: asReplicaIndex(0),
          cluster: testCluster,
          view: asView(0),
          requestCount: 0,
          op: asOp(opBefore + gap),
          commit: asOp(opBefore),
          timestampUs: asTimestampUs(1),
          parent: new Uint8Array(32).fill(0x5a),
        },
        new Uint8Array(0),
      );
      const message: ReplicaMessage = {
        kind: 'repair_prepare',
        replica: asReplicaIndex(1),
        view: asView(0),
        prepare,
        committed: false,
      };
      t.inject(0, message);
      assert.equal(primary.status, 'normal');
      assert.equal(primary.op, opBefore, 'the forged op is not in its log');
      const next = t.client().register().command(4);
      t.runUntil(() => next.idle, 'the next command');
    });
  }
});
