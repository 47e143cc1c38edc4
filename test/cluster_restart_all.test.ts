// The whole cluster crashing at once, with real processes: every replica of a 3-replica cluster
// is SIGKILLed under load and all are started again on their data directories.

import { test } from 'node:test';
import { Harness, sleep } from './harness.js';
import {
  TestCluster,
  hangTimeoutMs,
  startSteadyWorkload,
  checkWorkload,
} from './cluster_harness.js';

test(
  'SIGKILL of every replica at once loses no acknowledged write',
  { timeout: hangTimeoutMs },
  async (t) => {
    // Proves DESIGN §3 "never acknowledge a write that a restart could lose" for the cluster as a
    // whole: every acknowledgement was backed by a quorum of fsynced journals, so after all three
    // replicas die together (requests in flight) and start again, the recovery protocol finds a
    // leader, the same SDK clients reconnect and get acknowledgements again, and a final
    // linearizable read of each stream holds every acknowledged event at its acknowledged offset,
    // exactly once. The clients' history across the outage is linearizable.
    const h = new Harness(t);
    const cluster = await TestCluster.start(h, { name: 'restart-all' });
    const first = await cluster.waitForLeader();
    const workload = await startSteadyWorkload(cluster, 'restart');
    await sleep(500);

    await Promise.all([0, 1, 2].map((id) => cluster.kill(id)));
    const ackedBefore = workload.acks.length;
    const downAtMs = performance.now();
    await Promise.all([0, 1, 2].map((id) => cluster.restart(id)));
    const again = await cluster.waitForLeader();
    await workload.waitForAcks(100, downAtMs);
    const resumedMs = Math.round(workload.firstAckCalledAfter(downAtMs) ?? NaN);
    t.diagnostic(
      `${ackedBefore} appends acknowledged before the crash (leader ${first.leader}, view ` +
        `${first.view}); after the restart replica ${again.leader} leads view ${again.view}; ` +
        `first acknowledged write ${resumedMs} ms after the kill (restart included)`,
    );
    await workload.stop();

    t.diagnostic(`history: ${await checkWorkload(cluster, workload)}`);
  },
);
