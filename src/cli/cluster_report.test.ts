// Proves the rules of the operator reports (cluster_report.ts) on hand-made probes: the leader is
// the single claimant of the highest view and an old leader still claiming an older view is a
// problem but not unhealth; two claimants of one view, a lost quorum or no leader at all are
// unhealthy; unreachable replicas are rows, not errors; lag is measured in ops and in ms from
// the leader's commit; view-change histories merge into one entry per view within the window.
// Also the duration syntax of --since.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { kmbError } from '../core/errors.js';
import type { NodeStatus, ViewChange } from '../client/client.js';
import { parseDuration, formatDuration } from './cli_duration.js';
import { clusterReport, lagReport, mergeViewChanges } from './cluster_report.js';
import type { StatusProbe } from './cluster_report.js';

function status(id: number, fields: Partial<NodeStatus> = {}): NodeStatus {
  return {
    nodeId: id,
    status: 'normal',
    view: 1,
    commitNumber: 10,
    opNumber: 10,
    isLeader: false,
    leader: 1,
    clusterSize: 3,
    healthyReplicas: 3,
    quorumReachable: true,
    clusterName: 'local',
    clusterMembers: [],
    commitTimestampUs: 1_000_000,
    raw: {},
    ...fields,
  };
}

function up(id: number, fields: Partial<NodeStatus> = {}): StatusProbe {
  return { replicaId: id, address: `h:${id}`, reachable: true, value: status(id, fields) };
}

function down(id: number): StatusProbe {
  const error = kmbError('connection_lost', `h:${id}: connect ECONNREFUSED`);
  return { replicaId: id, address: `h:${id}`, reachable: false, error };
}

describe('cluster status', () => {
  it('is healthy with one leader and everyone normal', () => {
    const report = clusterReport([up(0), up(1, { isLeader: true }), up(2)]);
    assert.equal(report.healthy, true);
    assert.equal(report.leader, 1);
    assert.equal(report.reachable_replicas, 3);
    assert.equal(report.normal_replicas, 3);
    assert.deepEqual(report.problems, []);
  });

  it('is unhealthy when the leader says it cannot reach a quorum', () => {
    const leader = { isLeader: true, quorumReachable: false };
    const report = clusterReport([up(0), up(1, leader), up(2)]);
    assert.equal(report.healthy, false);
    assert.equal(report.leader, 1);
    assert.ok(
      report.problems.includes('replica 1 (h:1) leads but cannot reach a quorum of replicas'),
    );
  });

  it('shows an unreachable replica as a row and stays healthy with a quorum', () => {
    const report = clusterReport([up(0), up(1, { isLeader: true }), down(2)]);
    assert.equal(report.healthy, true);
    assert.equal(report.reachable_replicas, 2);
    const row = report.replicas[2];
    assert.equal(row?.status, 'unreachable');
    assert.equal(row?.reachable, false);
    assert.equal(row?.error?.code, 'KMB_ERR_CONNECTION_LOST');
    assert.match(report.problems.join('\n'), /replica 2 \(h:2\) is unreachable/);
  });

  it('is unhealthy without a quorum or without a leader', () => {
    const lonely = clusterReport([down(0), up(1, { isLeader: true }), down(2)]);
    assert.equal(lonely.healthy, false);
    assert.match(lonely.problems.join('\n'), /only 1 of 3 replicas are normal; quorum is 2/);
    const electing = clusterReport([
      up(0, { status: 'view_change', view: 2 }),
      up(1, { status: 'view_change', view: 2 }),
      down(2),
    ]);
    assert.equal(electing.healthy, false);
    assert.equal(electing.leader, null);
    assert.match(electing.problems.join('\n'), /no reachable replica is leader/);
  });

  it('takes the newest claimant as leader and names an old leader still claiming', () => {
    const report = clusterReport([
      up(0, { isLeader: true, view: 3, leader: 0, commitNumber: 7 }),
      up(1, { isLeader: true, view: 4, leader: 1, commitNumber: 12 }),
      up(2, { view: 4, leader: 1, commitNumber: 11 }),
    ]);
    assert.equal(report.leader, 1);
    assert.equal(report.healthy, true);
    assert.match(report.problems.join('\n'), /replica 0 still claims to lead view 3/);
    assert.match(report.problems.join('\n'), /replica 0 .* is at view 3, the leader at view 4/);
    assert.deepEqual(
      report.replicas.map((row) => row.lag_ops),
      [5, 0, 1],
    );
  });

  it('is unhealthy when two replicas claim the same view', () => {
    const report = clusterReport([up(0, { isLeader: true }), up(1, { isLeader: true }), up(2)]);
    assert.equal(report.healthy, false);
    assert.equal(report.leader, null);
    assert.match(report.problems.join('\n'), /replicas 0 and 1 all claim to lead view 1/);
  });

  it('names a replica listed out of replica order', () => {
    const report = clusterReport([up(0), { ...up(2, { isLeader: true }), replicaId: 1 }, up(2)]);
    assert.match(report.problems.join('\n'), /answered as node 2: list the replicas in replica/);
  });
});

describe('replication lag', () => {
  it('measures ops and ms against the leader', () => {
    const report = lagReport([
      up(0, { commitNumber: 8, commitTimestampUs: 1_000_000 }),
      up(1, { isLeader: true, commitNumber: 10, commitTimestampUs: 1_012_500 }),
      up(2, { commitNumber: 0, commitTimestampUs: 0 }),
    ]);
    assert.equal(report.leader, 1);
    assert.deepEqual(
      report.replicas.map((row) => [row.lag_ops, row.lag_ms]),
      [
        [2, 12.5],
        [0, 0],
        [10, null],
      ],
    );
  });

  it('cannot measure without a leader', () => {
    const report = lagReport([up(0), down(1), up(2)]);
    assert.equal(report.leader, null);
    assert.ok(report.replicas.every((row) => row.lag_ops === null));
  });
});

function change(view: number, startedAt: string, fields: Partial<ViewChange> = {}): ViewChange {
  return {
    startedAt,
    finishedAt: null,
    oldView: view - 1,
    view,
    reason: 'primary_timeout',
    leader: null,
    durationMs: null,
    ...fields,
  };
}

describe('view-change history', () => {
  const t = (seconds: number): string =>
    new Date(Date.UTC(2026, 0, 1, 0, 0, seconds)).toISOString();
  const ms = (seconds: number): number => Date.UTC(2026, 0, 1, 0, 0, seconds);

  it('merges one entry per view from every replica', () => {
    const merged = mergeViewChanges(
      [
        { replicaId: 0, changes: [change(1, t(10), { finishedAt: t(11), leader: 1 })] },
        {
          replicaId: 1,
          changes: [
            change(1, t(9), { finishedAt: t(10), leader: 1 }),
            change(2, t(30), { oldView: 1 }),
          ],
        },
        { replicaId: 2, changes: [change(1, t(12), { reason: 'learned', finishedAt: t(12) })] },
      ],
      0,
    );
    assert.deepEqual(merged, [
      {
        view: 1,
        old_view: 0,
        started_at: t(9),
        finished_at: t(10),
        duration_ms: 1000,
        reason: 'primary_timeout',
        leader: 1,
        reported_by: [0, 1, 2],
      },
      {
        view: 2,
        old_view: 1,
        started_at: t(30),
        finished_at: null,
        duration_ms: null,
        reason: 'primary_timeout',
        leader: null,
        reported_by: [1],
      },
    ]);
  });

  it('keeps only changes that overlap the window', () => {
    const histories = [
      {
        replicaId: 0,
        changes: [
          change(1, t(1), { finishedAt: t(2) }),
          change(2, t(20), { finishedAt: t(21) }),
          change(3, t(40)),
        ],
      },
    ];
    const views = (sinceMs: number): number[] =>
      mergeViewChanges(histories, sinceMs).map((merged) => merged.view);
    assert.deepEqual(views(ms(10)), [2, 3]);
    assert.deepEqual(views(ms(21)), [2, 3]);
    assert.deepEqual(views(ms(30)), [3]);
  });
});

describe('durations', () => {
  it('parses and formats what operators type', () => {
    assert.equal(parseDuration('30s'), 30_000);
    assert.equal(parseDuration('10m'), 600_000);
    assert.equal(parseDuration('2h'), 7_200_000);
    assert.equal(parseDuration('1h30m'), 5_400_000);
    assert.equal(parseDuration('250ms'), 250);
    assert.equal(formatDuration(5_400_000), '1h30m');
    for (const bad of ['', '10', 'm', '10x', '-1s', '1.5h', '400d']) {
      assert.throws(() => parseDuration(bad), /duration|366 days/, bad);
    }
  });
});
