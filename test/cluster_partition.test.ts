// A network partition with real processes: every replica link of a 3-replica cluster runs
// through a fault-injecting proxy, and the leader is cut off from both backups while clients
// can still reach every replica, the old leader included.

import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { KmbError } from '../src/client/client.js';
import type { Client } from '../src/client/client.js';
import { Harness, sleep } from './harness.js';
import {
  History,
  TestCluster,
  hangTimeoutMs,
  startSteadyWorkload,
  checkWorkload,
} from './cluster_harness.js';
import type { StreamTarget } from './cluster_harness.js';

/** Every append a client pinned to the old leader tries must fail: it may not acknowledge. */
async function expectNoAck(
  pinned: Client,
  history: History,
  target: StreamTarget,
  attempts: number,
): Promise<string[]> {
  const codes: string[] = [];
  for (let attempt = 0; attempt < attempts; attempt++) {
    const event = `${target.key}-pinned-${attempt}`;
    const input = { kind: 'append' as const, events: [event], expected: null };
    const pending = history.begin(target.key, 2_000_000, input);
    try {
      const result = await pinned.append({ ...target, events: [event] });
      pending.done({ kind: 'appended', firstOffset: result.firstOffset, count: result.count });
      assert.fail(`the partitioned old leader acknowledged ${event} at ${result.firstOffset}`);
    } catch (error) {
      if (!(error instanceof KmbError)) throw error;
      pending.done(null); // Unknown outcome: it must not show up, but the checker decides.
      codes.push(error.code);
    }
  }
  return codes;
}

test(
  'a leader partitioned from its backups is replaced; after healing all agree',
  { timeout: hangTimeoutMs },
  async (t) => {
    // Proves VSR's behaviour under partition, end to end: with the leader's links to both backups
    // cut (proxies refuse and drop every connection), the two backups elect a new leader in a
    // higher view and serve; the SDK clients, connected straight to every replica, follow it (the
    // old leader answers NOT_READY or sits on requests; the SDK moves on and follows NOT_LEADER
    // hints), so acknowledgements resume. The old leader acknowledges nothing: a client pinned to
    // it only sees failures, its reads are refused, its status says it cannot reach a quorum
    // and /health/ready answers 503; `kimberlite-cli cluster status` names the new leader and
    // exits 0 (a quorum is normal under it). After healing, all three replicas
    // converge (normal, same view, same op and commit), and after a graceful stop `verify` is
    // clean on every data directory and the three hold the same log head (last op, its checksum,
    // the state digest). No acknowledged append is lost; the clients' history, the pinned
    // client's included, is linearizable.
    const h = new Harness(t);
    const cluster = await TestCluster.start(h, { name: 'partition', proxied: true });
    const old = await cluster.waitForLeader();
    const workload = await startSteadyWorkload(cluster, 'partition');
    const { history, targets } = workload;
    const oldLeaderAddress = cluster.addresses[old.leader] ?? '';
    const pinned = await h.connect({
      addresses: [oldLeaderAddress],
      clusterName: cluster.name,
      requestTimeoutMs: 2_500,
      attemptTimeoutMs: 2_500,
    });

    const cutAtMs = performance.now();
    cluster.partition(old.leader);
    const others = [0, 1, 2].filter((id) => id !== old.leader);
    const next = await cluster.waitForLeader({ among: others, viewAbove: old.view });
    await workload.waitForAcks(100, cutAtMs);
    const resumedMs = Math.round(workload.firstAckCalledAfter(cutAtMs) ?? NaN);
    t.diagnostic(
      `partitioned replica ${old.leader} (leader of view ${old.view}); replica ${next.leader} ` +
        `leads view ${next.view}; first acknowledged write ${resumedMs} ms after the cut`,
    );

    const target = targets[0];
    assert.ok(target !== undefined);
    const codes = await expectNoAck(pinned, history, target, 2);
    t.diagnostic(`appends to the old leader during the partition failed with ${codes.join(', ')}`);
    await assert.rejects(pinned.read({ ...target }), (error: unknown) => {
      assert.ok(error instanceof KmbError, String(error));
      return true;
    });
    // The old leader must not present itself as a working leader: once its backups stop
    // answering it says it cannot reach a quorum (or it has left normal status).
    let stale = await cluster.status(old.leader);
    for (let poll = 0; poll < 40 && stale.status === 'normal' && stale.quorumReachable; poll++) {
      await sleep(100);
      stale = await cluster.status(old.leader);
    }
    t.diagnostic(
      `the old leader reports status ${stale.status}, view ${stale.view}, ` +
        `is_leader ${stale.isLeader}, quorum_reachable ${stale.quorumReachable}, ` +
        `commit ${stale.commitNumber}`,
    );
    assert.ok(
      stale.status !== 'normal' || stale.quorumReachable === false,
      'old leader: no quorum',
    );
    const oldOps = cluster.nodes[old.leader]?.opsUrl ?? '';
    const readiness = await fetch(`${oldOps}/health/ready`);
    assert.equal(readiness.status, 503, 'a leader without a quorum is not ready for traffic');
    t.diagnostic(`old leader /health/ready: ${readiness.status} ${await readiness.text()}`);
    const env = { KMB_CLUSTER: cluster.addresses.join(',') };
    const during = await h.runCli(['cluster', 'status', '--json'], { env });
    assert.equal(during.code, 0, `the majority is healthy:\n${during.stdout}${during.stderr}`);
    const report = JSON.parse(during.stdout) as { leader: number; problems: string[] };
    assert.equal(report.leader, next.leader, 'cluster status names the new leader');
    t.diagnostic(`cluster status during the partition: ${report.problems.join('; ') || 'healthy'}`);

    cluster.heal();
    await sleep(500); // Load across the heal.
    await workload.stop();
    const commit = await cluster.waitForConvergence();
    t.diagnostic(`after healing all three converged at commit ${commit}`);

    t.diagnostic(`history: ${await checkWorkload(cluster, workload)}`);
    await pinned.close();

    await cluster.stopAllAndVerifySameHead();
  },
);
