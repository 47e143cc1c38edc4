// The replica of this process: the pure VSR replica over the kernel's state machine, configured
// from the node's configuration and started from the superblock's durable view, log view and
// commit. Randomness (election jitter, nonces) and the wall clock are injected here, at the
// edge, where they are allowed.

import { clusterIdFromName, rootPrepare } from '../core/header.js';
import { asOp, asReplicaIndex, asView } from '../core/types.js';
import { kernelStateMachine } from '../kernel/kernel.js';
import type { KernelOutput, State } from '../kernel/kernel.js';
import type { Superblock } from '../storage/superblock.js';
import { Replica } from '../vsr/replica.js';
import type { NodeDependencies } from './node_deps.js';

export type NodeReplica = Replica<KernelOutput>;

function defaultRealtimeUs(): number {
  return Math.floor((performance.timeOrigin + performance.now()) * 1000);
}

/** The replica of this process, with its durable view and commit from the superblock. */
export function createReplica(
  deps: NodeDependencies,
  superblock: Superblock,
  state: State,
): NodeReplica {
  const config = deps.config;
  const cluster = clusterIdFromName(config.clusterName);
  const alone = config.peers.length === 1;
  return new Replica<KernelOutput>({
    cluster,
    replica: asReplicaIndex(config.nodeId),
    replicaCount: config.peers.length,
    stateMachine: kernelStateMachine(state),
    realtimeUs: deps.realtimeUs ?? defaultRealtimeUs,
    view: asView(superblock.state.view),
    logView: asView(superblock.state.logView),
    commit: asOp(superblock.state.commit),
    rootChecksum: rootPrepare(cluster).header.checksum,
    // Election jitter and nonces: randomness at the edge, where it is allowed.
    prng: { float: () => Math.random() },
    pipelinePrepareCountMax: config.pipelinePrepareCountMax,
    prepareRequestCountMax: config.prepareRequestCountMax,
    clientSessionCountMax: config.clientSessionCountMax,
    heartbeatTicks: Math.max(1, Math.round(config.heartbeatMs / config.tickMs)),
    electionTimeoutTicks: Math.max(2, Math.round(config.electionTimeoutMs / config.tickMs)),
    tickUs: config.tickMs * 1000,
    // With peers, prepares carry the time a quorum of clocks agrees on (Marzullo), and a
    // background scrubber re-verifies the committed journal, repairing from peers.
    clockSync: !alone,
    scrubReadsPerTickMax: alone ? 0 : 1,
  });
}
