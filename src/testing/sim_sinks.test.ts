// Proves that the simulator runs each replica through the node's one effect driver and the
// node's read rules, rather than copies of its own: every running SimNode holds an EffectDriver
// (src/vsr/effect_driver.ts) over its replica (gone at a crash, new at a restart), every effect
// it performs is folded into the trace hash, and a read is refused or served by the node's
// ReadGate (src/node/read_gate.ts), fed by the replica's data effects: a primary whose backups
// are down refuses linearizable reads once it notices (quorum_changed), and a primary that
// hears a quorum again serves them. A cluster of three replicas without faults, driven tick by
// tick; the replicas are crashed and restarted by hand.

import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { errorCodes } from '../core/errors.js';
import type { ErrorCode } from '../core/errors.js';
import { EffectDriver } from '../vsr/effect_driver.js';
import { Cluster } from './cluster.js';
import type { FaultClass } from './fault_plan.js';
import { makePlan } from './fault_plan.js';
import { Prng } from './prng.js';
import type { SimNode } from './sim_node.js';

const replicaCount = 3;
/** A bound on every wait below (liveness, not performance: each takes far fewer ticks). */
const waitTicksMax = 3000;

function newCluster(seed: number): Cluster {
  const prng = new Prng(seed);
  const faults: ReadonlySet<FaultClass> = new Set();
  const plan = makePlan(prng.fork(), { replicaCount, faults });
  return new Cluster({ seed, replicaCount, faults, canary: null, plan, prng: prng.fork() });
}

/** What the node's read rules answer a linearizable read at `node` now (null: served). */
function linearizableRefusal(node: SimNode): ErrorCode | null {
  const replica = node.replica;
  assert.ok(replica !== null, 'a running replica');
  return node.readGate.refusal(replica, { kind: 'linearizable' })?.code ?? null;
}

/** Ticks until some running replica serves linearizable reads; returns it. */
function tickUntilReadable(cluster: Cluster): SimNode {
  for (let t = 0; t < waitTicksMax; t++) {
    const readable = cluster.nodes.find((n) => n.running && linearizableRefusal(n) === null);
    if (readable !== undefined) return readable;
    cluster.tick();
  }
  assert.fail(`no replica served linearizable reads within ${waitTicksMax} ticks`);
}

describe('the simulator drives replicas through the node effect driver', () => {
  it('gives every running replica an EffectDriver, and traces every effect it performs', () => {
    const cluster = newCluster(11);
    for (const node of cluster.nodes) {
      assert.ok(node.driver instanceof EffectDriver, `replica ${node.index} has the driver`);
      assert.equal(node.replica, node.driver.replica);
    }
    const node = cluster.nodes[1];
    assert.ok(node !== undefined);
    // Only the driver is called here (no packets, no disk completions): what changes the trace
    // hash is the effects of the replica's ticks (its first ping or heartbeat).
    const before = cluster.trace.digest();
    for (let t = 0; t < waitTicksMax && cluster.trace.digest() === before; t++) {
      node.runningDriver().tick();
    }
    assert.notEqual(cluster.trace.digest(), before, 'the tick effects reached the trace hash');
    const first = node.driver;
    node.crash();
    assert.equal(node.running, false, 'a crashed replica has no driver');
    assert.equal(node.replica, null);
    node.restartTick = cluster.now + 1;
    cluster.tick();
    assert.ok(node.driver instanceof EffectDriver && node.driver !== first, 'a new driver');
  });

  it('refuses linearizable reads at a primary that lost its quorum, by the node read gate', () => {
    const cluster = newCluster(12);
    const primary = tickUntilReadable(cluster);
    const backups = cluster.nodes.filter((n) => n !== primary);
    for (const backup of backups) backup.crash();
    let refusal: ErrorCode | null = null;
    for (let t = 0; t < waitTicksMax && refusal === null; t++) {
      cluster.tick();
      refusal = linearizableRefusal(primary);
    }
    assert.equal(refusal, errorCodes.not_ready, 'the primary noticed it lost its quorum');
    assert.equal(primary.replica?.isPrimary, true, 'still primary: only its quorum is gone');
    assert.equal(primary.readGate.primaryHearsQuorum, false);
    for (const backup of backups) backup.restartTick = cluster.now + 1;
    const readable = tickUntilReadable(cluster);
    assert.equal(readable.readGate.primaryHearsQuorum, true);
  });
});
