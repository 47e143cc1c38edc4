// The operator's commands against a real 3-replica cluster: kimberlite-cli run as a process,
// with KMB_CLUSTER naming the replicas, through a backup's death and a leader's.

import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { Harness } from './harness.js';
import type { RunResult } from './harness.js';
import { TestCluster, hangTimeoutMs } from './cluster_harness.js';

type Row = Record<string, unknown>;

function parsed(run: RunResult, what: string): Row {
  try {
    return JSON.parse(run.stdout) as Row;
  } catch {
    throw new Error(`${what}: stdout is not JSON (exit ${run.code}):\n${run.stdout}${run.stderr}`);
  }
}

test(
  'cluster status, replica status, replication lag and view-changes',
  { timeout: hangTimeoutMs },
  async (t) => {
    // Proves the CLI's operator surface on real replicas: `cluster status --json` names one
    // leader and three reachable, normal replicas (exit 0); `replica status` prints a replica's
    // own status; after writes `replication lag --all --json` measures every replica against
    // the leader and reaches zero lag; with one backup SIGKILLed `cluster status` shows 2
    // reachable replicas and that backup as unreachable, still exits 0 (a quorum is normal under
    // one leader), and `replica status` of the dead backup prints "unreachable" and exits 1;
    // after the leader is SIGKILLed and a new one elected, `cluster view-changes --since 10m
    // --json` lists that failover (the new view, its leader, finished).
    const h = new Harness(t);
    const cluster = await TestCluster.start(h, { name: 'cli' });
    const first = await cluster.waitForLeader();
    const env = { KMB_CLUSTER: cluster.addresses.join(',') };
    const cli = (args: string[]): Promise<RunResult> => h.runCli(args, { env });

    const healthy = await cli(['cluster', 'status', '--json']);
    assert.equal(healthy.code, 0, healthy.stderr + healthy.stdout);
    const report = parsed(healthy, 'cluster status');
    assert.equal(report['leader'], first.leader);
    assert.equal(report['reachable_replicas'], 3);
    assert.equal(report['normal_replicas'], 3);
    const rows = report['replicas'] as Row[];
    assert.equal(rows.filter((row) => row['is_leader'] === true).length, 1);
    assert.deepEqual(
      rows.map((row) => row['address']),
      cluster.addresses,
    );

    const replica = await cli(['replica', 'status', '--replica-id', '2', '--json']);
    assert.equal(replica.code, 0, replica.stderr);
    const own = parsed(replica, 'replica status');
    assert.deepEqual([own['node_id'], own['reachable'], own['status']], [2, true, 'normal']);
    assert.equal(own['cluster_name'], 'cli');

    const created = await cli(['tenant', 'create', '--name', 'ops', '--json']);
    assert.equal(created.code, 0, created.stderr);
    await cli(['stream', 'create', '--tenant', 'ops', '--name', 'audit']);
    const events = Array.from({ length: 20 }, (_, n) => JSON.stringify({ n })).join('\n');
    for (let batch = 0; batch < 5; batch++) {
      const appended = await h.runCli(
        ['stream', 'append', '--tenant', 'ops', '--stream', 'audit', '--data', '-'],
        { env, stdin: events },
      );
      assert.equal(appended.code, 0, appended.stderr);
    }
    const commit = await cluster.waitForConvergence();
    const lag = await cli(['replication', 'lag', '--all', '--json']);
    assert.equal(lag.code, 0, lag.stderr);
    const lagReport = parsed(lag, 'replication lag');
    assert.equal(lagReport['leader'], first.leader);
    assert.equal(lagReport['leader_commit_number'], commit);
    for (const row of lagReport['replicas'] as Row[]) {
      assert.deepEqual([row['lag_ops'], row['lag_ms']], [0, 0], JSON.stringify(row));
    }

    const backup = (first.leader + 1) % cluster.size;
    await cluster.kill(backup);
    const degraded = await cli(['cluster', 'status', '--json']);
    assert.equal(degraded.code, 0, `a quorum is still normal:\n${degraded.stdout}`);
    const degradedReport = parsed(degraded, 'cluster status');
    assert.equal(degradedReport['reachable_replicas'], 2);
    const dead = (degradedReport['replicas'] as Row[])[backup];
    assert.deepEqual([dead?.['status'], dead?.['reachable']], ['unreachable', false]);
    const text = await cli(['cluster', 'status']);
    assert.equal(text.code, 0);
    assert.match(text.stdout, new RegExp(`\\n${backup}\\s+\\S+\\s+unreachable`));
    const gone = await cli(['replica', 'status', '--replica-id', String(backup), '--json']);
    assert.equal(gone.code, 1);
    assert.equal(parsed(gone, 'replica status')['status'], 'unreachable');

    await cluster.restart(backup);
    await cluster.waitForConvergence();
    await cluster.kill(first.leader);
    const next = await cluster.waitForLeader({ excluding: [first.leader], viewAbove: first.view });
    const history = await cli(['cluster', 'view-changes', '--since', '10m', '--json']);
    assert.equal(history.code, 0, history.stderr);
    const changes = parsed(history, 'view-changes')['view_changes'] as Row[];
    const failover = changes.find((change) => change['view'] === next.view);
    assert.ok(failover !== undefined, `view ${next.view} is listed: ${history.stdout}`);
    assert.equal(failover['leader'], next.leader);
    assert.equal(typeof failover['finished_at'], 'string');
    t.diagnostic(`failover as the CLI lists it: ${JSON.stringify(failover)}`);
    const table = await cli(['cluster', 'view-changes', '--since', '10m']);
    assert.equal(table.code, 0);
    assert.match(table.stdout, /VIEW\s+FROM\s+STARTED/);
  },
);
