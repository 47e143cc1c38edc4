// A backup's crash and return, with real processes: SIGKILL one backup of a 3-replica cluster
// under load, keep writing on the remaining quorum, restart it, and check it catches up.

import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { Harness, sleep } from './harness.js';
import {
  History,
  TestCluster,
  Workload,
  checkAcked,
  createStreams,
  hangTimeoutMs,
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
    const targets = await createStreams(cluster, 'backups', 2);
    const history = new History();
    const workload = new Workload(cluster, history, targets, {
      writersPerStream: 2,
      readersPerStream: 1,
    });
    await workload.start();
    await workload.waitForAcks(100);

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

    assert.deepEqual(workload.unexpected, []);
    const reader = await cluster.connect({ requestTimeoutMs: 20_000 });
    assert.deepEqual(await checkAcked(reader, workload), []);
    assert.deepEqual(history.check(), []);
    t.diagnostic(`history: ${history.summary()}`);
    await reader.close();

    for (let id = 0; id < cluster.size; id++) await cluster.stop(id);
    const verdicts = await Promise.all([0, 1, 2].map((id) => cluster.verify(id)));
    for (const [id, verdict] of verdicts.entries()) {
      const output = `${verdict.run.stdout}${verdict.run.stderr}`;
      assert.ok(verdict.ok, `verify of replica ${id}:\n${output}\n${cluster.describe(id)}`);
    }
    const heads = verdicts.map((v) => [v.opMax, v.headChecksum, v.stateDigest]);
    assert.deepEqual(heads[1], heads[0], 'replicas 0 and 1 hold the same log head');
    assert.deepEqual(heads[2], heads[0], 'replicas 0 and 2 hold the same log head');
  },
);
