// A backup's crash and return, with real processes: SIGKILL one backup of a 3-replica cluster
// under load, keep writing on the remaining quorum, restart it, and check it catches up.

import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { Harness, sleep } from './harness.js';
import {
  TestCluster,
  hangTimeoutMs,
  startSteadyWorkload,
  checkWorkload,
} from './cluster_harness.js';

test(
  'a SIGKILLed backup restarts, catches up, and every data directory verifies',
  { timeout: hangTimeoutMs },
  async (t) => {
    // Proves DESIGN §3 restart and catch-up: while one backup is dead the leader and the other
    // backup keep committing (a quorum of 2 of 3); the backup restarted on its data directory
    // rejoins and its commit_number reaches the leader's, with the same op number and view. After
    // a graceful stop of all three, `kimberlite-admin verify --data-dir` is clean on every data
    // directory (checksums, hash chain, superblock, kernel replay) and all three hold the same log
    // head (op, head checksum, state digest). No acknowledged append is lost and the clients'
    // history is linearizable.
    const h = new Harness(t);
    const cluster = await TestCluster.start(h, { name: 'backup-restart' });
    const { leader } = await cluster.waitForLeader();
    const backup = (leader + 1) % cluster.size;
    const workload = await startSteadyWorkload(cluster, 'backups');

    await cluster.kill(backup);
    const killedAtMs = performance.now();
    await workload.waitForAcks(200, killedAtMs); // The quorum without the backup keeps committing.
    const behind = await cluster.status(leader);
    await cluster.restart(backup);
    await sleep(500); // Some load while it catches up.
    await workload.stop();
    const commit = await cluster.waitForConvergence();
    t.diagnostic(
      `replica ${backup} was down while the leader went to commit ${behind.commitNumber}; ` +
        `all three converged at commit ${commit}`,
    );
    assert.ok(commit >= behind.commitNumber);
    const caughtUp = await cluster.status(backup);
    assert.equal(caughtUp.commitNumber, commit);

    t.diagnostic(`history: ${await checkWorkload(cluster, workload)}`);

    await cluster.stopAllAndVerifySameHead();
  },
);
