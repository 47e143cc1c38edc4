// Leader failover under load, with real processes: a 3-replica cluster serves six SDK clients
// (two writers and one reader on each of two shared streams); the leader is SIGKILLed mid-load.

import { test } from 'node:test';
import { Harness, sleep } from './harness.js';
import {
  TestCluster,
  hangTimeoutMs,
  startSteadyWorkload,
  checkWorkload,
} from './cluster_harness.js';

test(
  'SIGKILL of the leader under load: writes resume, nothing acknowledged is lost',
  { timeout: hangTimeoutMs },
  async (t) => {
    // Proves DESIGN §1/§3 failover: after the leader dies with requests in flight, the backups
    // elect a new leader (one with a higher view, which a quorum follows) and the same SDK clients,
    // following NOT_LEADER hints and reconnecting, get acknowledgements again. Afterwards a
    // linearizable read of each stream holds every acknowledged event at the offset it was
    // acknowledged with, exactly once, and every client's history (appends, reads, the final
    // read; appends that failed count as unknown outcomes) passes the linearizability checker.
    // The failover time (from the kill to the acknowledgement of the first append called after
    // it) is printed, not judged.
    const h = new Harness(t);
    const cluster = await TestCluster.start(h, { name: 'failover' });
    const first = await cluster.waitForLeader();
    const workload = await startSteadyWorkload(cluster, 'failover');
    await sleep(1000); // A steady load for a while: the kill lands among requests in flight.

    const killedAtMs = performance.now();
    await cluster.kill(first.leader);
    const second = await cluster.waitForLeader({
      excluding: [first.leader],
      viewAbove: first.view,
    });
    await workload.waitForAcks(100, killedAtMs);
    const failoverMs = Math.round(workload.firstAckCalledAfter(killedAtMs) ?? NaN);
    t.diagnostic(
      `failover: replica ${first.leader} (view ${first.view}) killed; replica ${second.leader} ` +
        `leads view ${second.view}; first acknowledged write ${failoverMs} ms after the kill`,
    );
    await workload.stop();

    t.diagnostic(`history: ${await checkWorkload(cluster, workload)}`);
  },
);
