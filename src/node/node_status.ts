// What the node says about itself: readiness (/health/ready) and the status document (/status,
// `kimberlite-cli replica status`, the node_status query). Both are read from the replica, the
// read gate, the peer links and the disk as they are at the moment of asking.
//
// Ready means: listening, not stopping, the disk not full, the replica normal, a quorum reachable
// (the primary knows from its backups' answers; any other replica judges by its live links) and
// its executed state within readyCommitLagOpsMax of what it knows is committed.

import type { DiskSpace } from './disk_space.js';
import type { ReadGate } from './read_gate.js';

/**
 * A replica that knows of more committed ops than it has applied, by more than this, answers
 * /health/ready with 503 `catching_up`: its reads would be far behind. Under a steady load a
 * healthy backup trails by a few pipelines of prepares, far below this.
 */
export const readyCommitLagOpsMax = 1024;

/** What status and readiness read of the replica. */
export interface StatusReplica {
  readonly status: string;
  readonly view: number;
  readonly isPrimary: boolean;
  readonly primaryIndex: number;
  readonly quorum: number;
  readonly replicaCount: number;
  readonly op: number;
  readonly commitMin: number;
  readonly commitMax: number;
}

export interface NodeStatusSource {
  readonly nodeId: number;
  readonly clusterName: string;
  readonly peers: readonly string[];
  readonly metricsAddress: string | null;
  readonly replica: StatusReplica;
  readonly gate: ReadGate;
  readonly disk: DiskSpace;
  readonly connectedPeers: () => readonly number[];
  readonly stopping: () => boolean;
  readonly listening: () => boolean;
  readonly commitTimestampUs: () => number;
  /** Each derived view's position (views/view_host.ts). */
  readonly views: () => unknown;
}

/** Whether this replica can reach a quorum (itself included) right now. */
export function quorumReachableNow(s: NodeStatusSource): boolean {
  if (s.replica.isPrimary) return s.gate.primaryHearsQuorum;
  return 1 + s.connectedPeers().length >= s.replica.quorum;
}

export function nodeReadiness(s: NodeStatusSource): { ready: boolean; reason: string } {
  const replica = s.replica;
  if (s.stopping()) return { ready: false, reason: 'shutting_down' };
  if (!s.listening()) return { ready: false, reason: 'recovering' };
  if (s.disk.full) return { ready: false, reason: 'disk_full' };
  if (replica.status !== 'normal') return { ready: false, reason: replica.status };
  if (!quorumReachableNow(s)) return { ready: false, reason: 'quorum_unreachable' };
  if (replica.commitMax - replica.commitMin > readyCommitLagOpsMax) {
    return { ready: false, reason: 'catching_up' };
  }
  return { ready: true, reason: 'ok' };
}

export function nodeStatus(s: NodeStatusSource): Record<string, unknown> {
  const replica = s.replica;
  const normal = replica.status === 'normal' && !s.stopping();
  const connected = new Set(s.connectedPeers());
  const leader = normal ? replica.primaryIndex : null;
  return {
    node_id: s.nodeId,
    status: s.stopping() ? 'shutting_down' : replica.status,
    view: replica.view,
    // Executed (applied) progress: what this replica's state and journal reflect. A replica
    // catching up may know of later commits (commit_known) that it has not applied yet.
    commit_number: replica.commitMin,
    commit_known: replica.commitMax,
    op_number: replica.op,
    is_leader: normal && replica.isPrimary,
    leader,
    cluster_size: replica.replicaCount,
    healthy_replicas: normal ? 1 + connected.size : 0,
    quorum_reachable: normal && quorumReachableNow(s),
    cluster_name: s.clusterName,
    metrics_address: s.metricsAddress,
    commit_timestamp_us: s.commitTimestampUs(),
    // A full disk refuses writes and serves reads (disk_space.ts); free bytes null: unknown.
    disk_full: s.disk.full,
    disk_free_bytes: s.disk.freeBytes,
    disk_free_bytes_min: s.disk.freeBytesMin,
    cluster_members: s.peers.map((address, nodeId) => {
      const self = nodeId === s.nodeId;
      return {
        node_id: nodeId,
        address,
        self,
        connected: self || connected.has(nodeId),
        is_leader: nodeId === leader,
      };
    }),
    views: s.views(),
  };
}
