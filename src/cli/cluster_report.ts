// The operator's reports on a cluster, built from what each replica says about itself: `cluster
// status`, `replication lag` and `cluster view-changes` (docs/cli.md). Pure functions of the
// probes (one node_status or view_changes answer per replica, or the reason there is none), so
// they are tested without sockets; cli_cluster.ts does the asking and the printing.
//
// Rules the reports keep:
//   - a replica that did not answer is a row with status "unreachable", never an error;
//   - the leader is the one replica that claims leadership in the highest view any claimant
//     holds; a replica still claiming an older view (an old leader cut off from its peers) is
//     named as a problem but does not make the cluster unhealthy, two claimants of one view do;
//   - the cluster is healthy when there is a leader and a quorum of replicas (the leader
//     included) is `normal` in the leader's view;
//   - lag is measured against the leader's commit: in ops (leader commit_number minus the
//     replica's) and in milliseconds (the difference of the two commits' prepare timestamps).

import type { KmbError } from '../core/errors.js';
import type { NodeStatus, ViewChange } from '../client/client.js';

/** What asking one replica gave: its answer, or why there is none. */
export type Probe<T> =
  | {
      readonly replicaId: number;
      readonly address: string | null;
      readonly reachable: true;
      readonly value: T;
    }
  | {
      readonly replicaId: number;
      readonly address: string | null;
      readonly reachable: false;
      readonly error: KmbError;
    };

export type StatusProbe = Probe<NodeStatus>;

export interface ErrorJson {
  readonly code: string;
  readonly message: string;
}

/** One replica's row of `cluster status --json` (docs/cli.md). */
export interface ReplicaRow {
  readonly replica_id: number;
  readonly address: string | null;
  readonly reachable: boolean;
  readonly status: string;
  readonly view: number | null;
  readonly op_number: number | null;
  readonly commit_number: number | null;
  readonly is_leader: boolean;
  readonly leader: number | null;
  readonly lag_ops: number | null;
  readonly lag_ms: number | null;
  readonly error: ErrorJson | null;
}

/** `cluster status --json`. */
export interface ClusterReport {
  readonly cluster_name: string | null;
  readonly cluster_size: number;
  readonly quorum: number;
  readonly view: number | null;
  readonly leader: number | null;
  readonly healthy: boolean;
  readonly reachable_replicas: number;
  readonly normal_replicas: number;
  readonly problems: readonly string[];
  readonly replicas: readonly ReplicaRow[];
}

/** One replica's row of `replication lag --json`. */
export interface LagRow {
  readonly replica_id: number;
  readonly address: string | null;
  readonly reachable: boolean;
  readonly is_leader: boolean;
  readonly commit_number: number | null;
  readonly commit_timestamp_us: number | null;
  readonly lag_ops: number | null;
  readonly lag_ms: number | null;
  readonly error: ErrorJson | null;
}

/** `replication lag --json`. */
export interface LagReport {
  readonly leader: number | null;
  readonly view: number | null;
  readonly leader_commit_number: number | null;
  readonly problems: readonly string[];
  readonly replicas: readonly LagRow[];
}

/** One view change as the cluster saw it (`cluster view-changes --json`). */
export interface MergedViewChange {
  readonly view: number;
  readonly old_view: number;
  readonly started_at: string;
  readonly finished_at: string | null;
  readonly duration_ms: number | null;
  readonly reason: string;
  readonly leader: number | null;
  /** The replicas whose history holds this view change. */
  readonly reported_by: readonly number[];
}

export function quorumOf(clusterSize: number): number {
  return Math.floor(clusterSize / 2) + 1;
}

export function errorJson(error: KmbError): ErrorJson {
  return { code: error.code, message: error.message };
}

interface LeaderChoice {
  readonly leader: NodeStatus | null;
  readonly leaderId: number | null;
  readonly problems: string[];
}

function reachable(probes: readonly StatusProbe[]): Array<{ id: number; status: NodeStatus }> {
  const answers: Array<{ id: number; status: NodeStatus }> = [];
  for (const probe of probes) {
    if (probe.reachable) answers.push({ id: probe.replicaId, status: probe.value });
  }
  return answers;
}

/** The leader by the rule in the file comment, and what is wrong with leadership. */
export function chooseLeader(probes: readonly StatusProbe[]): LeaderChoice {
  const claimants = reachable(probes).filter((answer) => answer.status.isLeader);
  const problems: string[] = [];
  if (claimants.length === 0) {
    return { leader: null, leaderId: null, problems: ['no reachable replica is leader'] };
  }
  const viewMax = Math.max(...claimants.map((claimant) => claimant.status.view));
  const top = claimants.filter((claimant) => claimant.status.view === viewMax);
  for (const stale of claimants.filter((claimant) => claimant.status.view < viewMax)) {
    problems.push(
      `replica ${stale.id} still claims to lead view ${stale.status.view}; ` +
        `the cluster is at view ${viewMax}`,
    );
  }
  const chosen = top[0];
  if (top.length > 1 || chosen === undefined) {
    const ids = top.map((claimant) => claimant.id).join(' and ');
    problems.push(`replicas ${ids} all claim to lead view ${viewMax}`);
    return { leader: null, leaderId: null, problems };
  }
  return { leader: chosen.status, leaderId: chosen.id, problems };
}

/** Lag of `replica` behind `leader`: ops, and ms between the two commits' timestamps. */
export function lagOf(
  leader: NodeStatus | null,
  replica: NodeStatus,
): { lagOps: number | null; lagMs: number | null } {
  if (leader === null) return { lagOps: null, lagMs: null };
  const lagOps = leader.commitNumber - replica.commitNumber;
  const leaderUs = leader.commitTimestampUs;
  const replicaUs = replica.commitTimestampUs;
  if (leaderUs === null || replicaUs === null) return { lagOps, lagMs: null };
  // A replica that has committed nothing yet has no timestamp to measure from.
  if (replicaUs === 0 && leaderUs !== 0) return { lagOps, lagMs: null };
  return { lagOps, lagMs: (leaderUs - replicaUs) / 1000 };
}

function statusRow(probe: StatusProbe, leader: NodeStatus | null): ReplicaRow {
  const base = { replica_id: probe.replicaId, address: probe.address };
  if (!probe.reachable) {
    return {
      ...base,
      reachable: false,
      status: 'unreachable',
      view: null,
      op_number: null,
      commit_number: null,
      is_leader: false,
      leader: null,
      lag_ops: null,
      lag_ms: null,
      error: errorJson(probe.error),
    };
  }
  const status = probe.value;
  const { lagOps, lagMs } = lagOf(leader, status);
  return {
    ...base,
    reachable: true,
    status: status.status,
    view: status.view,
    op_number: status.opNumber,
    commit_number: status.commitNumber,
    is_leader: status.isLeader,
    leader: status.leader,
    lag_ops: lagOps,
    lag_ms: lagMs,
    error: null,
  };
}

/** Problems a replica's own answer shows: unreachable, not normal, in another view, misplaced. */
function replicaProblems(probe: StatusProbe, leader: NodeStatus | null): string[] {
  const name = `replica ${probe.replicaId}${probe.address === null ? '' : ` (${probe.address})`}`;
  if (!probe.reachable) return [`${name} is unreachable: ${probe.error.message}`];
  const status = probe.value;
  const problems: string[] = [];
  if (status.nodeId !== probe.replicaId) {
    problems.push(
      `${name} answered as node ${status.nodeId}: list the replicas in replica order ` +
        "(as the servers' --cluster-peers)",
    );
  }
  if (status.status !== 'normal') problems.push(`${name} is ${status.status}`);
  else if (status.quorumReachable === false) {
    const role = status.isLeader ? 'leads but ' : '';
    problems.push(`${name} ${role}cannot reach a quorum of replicas`);
  } else if (leader !== null && status.view !== leader.view) {
    problems.push(`${name} is at view ${status.view}, the leader at view ${leader.view}`);
  }
  return problems;
}

/** The size of the cluster: the largest any replica reports, or the number of replicas asked. */
export function clusterSizeOf(probes: readonly StatusProbe[]): number {
  const reported = reachable(probes).map((answer) => answer.status.clusterSize);
  return Math.max(probes.length, ...reported);
}

/** `cluster status`: one row per replica and the verdict. */
export function clusterReport(probes: readonly StatusProbe[]): ClusterReport {
  const { leader, leaderId, problems } = chooseLeader(probes);
  const clusterSize = clusterSizeOf(probes);
  const quorum = quorumOf(clusterSize);
  const answers = reachable(probes);
  const normal = answers.filter(
    (answer) =>
      answer.status.status === 'normal' && leader !== null && answer.status.view === leader.view,
  );
  for (const probe of probes) problems.push(...replicaProblems(probe, leader));
  // A leader that says it cannot reach a quorum commits nothing, however many replicas answer us.
  const healthy = leader !== null && normal.length >= quorum && leader.quorumReachable !== false;
  if (leader !== null && !healthy) {
    problems.push(
      `only ${normal.length} of ${clusterSize} replicas are normal; quorum is ${quorum}`,
    );
  }
  const names = new Set(answers.map((answer) => answer.status.clusterName));
  if (names.size > 1) problems.push(`replicas name different clusters: ${[...names].join(', ')}`);
  return {
    cluster_name: leader?.clusterName ?? answers[0]?.status.clusterName ?? null,
    cluster_size: clusterSize,
    quorum,
    view: leader?.view ?? null,
    leader: leaderId,
    healthy,
    reachable_replicas: answers.length,
    normal_replicas: normal.length,
    problems,
    replicas: probes.map((probe) => statusRow(probe, leader)),
  };
}

/** `replication lag`: each replica's commit against the leader's. */
export function lagReport(probes: readonly StatusProbe[]): LagReport {
  const { leader, leaderId, problems } = chooseLeader(probes);
  const replicas = probes.map((probe): LagRow => {
    const base = { replica_id: probe.replicaId, address: probe.address };
    if (!probe.reachable) {
      problems.push(`replica ${probe.replicaId} is unreachable: ${probe.error.message}`);
      return {
        ...base,
        reachable: false,
        is_leader: false,
        commit_number: null,
        commit_timestamp_us: null,
        lag_ops: null,
        lag_ms: null,
        error: errorJson(probe.error),
      };
    }
    const status = probe.value;
    const { lagOps, lagMs } = lagOf(leader, status);
    return {
      ...base,
      reachable: true,
      is_leader: status.isLeader,
      commit_number: status.commitNumber,
      commit_timestamp_us: status.commitTimestampUs,
      lag_ops: lagOps,
      lag_ms: lagMs,
      error: null,
    };
  });
  return {
    leader: leaderId,
    view: leader?.view ?? null,
    leader_commit_number: leader?.commitNumber ?? null,
    problems,
    replicas,
  };
}

function timeMs(iso: string): number {
  const ms = Date.parse(iso);
  return Number.isNaN(ms) ? 0 : ms;
}

/**
 * Merges the view-change histories of several replicas into one list, one entry per view, in
 * view order: started when the first replica started it, finished when the first replica
 * finished it (the new leader, which starts normal operation before its backups hear of it),
 * with the reason of the earliest replica that started it itself rather than learning of it.
 * Only changes that overlap [sinceMs, now] are kept (sinceMs 0 keeps every one).
 */
export function mergeViewChanges(
  histories: ReadonlyArray<{ replicaId: number; changes: readonly ViewChange[] }>,
  sinceMs: number,
): MergedViewChange[] {
  const byView = new Map<number, Array<{ replicaId: number; change: ViewChange }>>();
  for (const { replicaId, changes } of histories) {
    for (const change of changes) {
      const group = byView.get(change.view) ?? [];
      group.push({ replicaId, change });
      byView.set(change.view, group);
    }
  }
  const merged: MergedViewChange[] = [];
  for (const [view, group] of [...byView].sort((a, b) => a[0] - b[0])) {
    group.sort((a, b) => timeMs(a.change.startedAt) - timeMs(b.change.startedAt));
    const first = group[0];
    if (first === undefined) continue;
    const finished = group
      .map((entry) => entry.change.finishedAt)
      .filter((at): at is string => at !== null)
      .sort((a, b) => timeMs(a) - timeMs(b))[0];
    const endMs = finished === undefined ? Infinity : timeMs(finished);
    if (endMs < sinceMs && timeMs(first.change.startedAt) < sinceMs) continue;
    const started = group.find((entry) => entry.change.reason !== 'learned') ?? first;
    merged.push({
      view,
      old_view: Math.max(...group.map((entry) => entry.change.oldView)),
      started_at: first.change.startedAt,
      finished_at: finished ?? null,
      duration_ms: finished === undefined ? null : endMs - timeMs(first.change.startedAt),
      reason: started.change.reason,
      leader: group.find((entry) => entry.change.leader !== null)?.change.leader ?? null,
      reported_by: [...new Set(group.map((entry) => entry.replicaId))].sort((a, b) => a - b),
    });
  }
  return merged;
}
