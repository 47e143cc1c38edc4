// The seam between the simulator and how a replica is built and configured (src/vsr/replica.ts),
// so that when its options grow only this file has to follow:
//
// - createReplica(): builds a Replica with the real kernel state machine, the injected wall
//   clock and PRNG, the durable superblock state (view, log view, commit), and the canary;
// - the canaries the replica offers, checked against its Canary type at compile time;
// - supportedFaults(): the fault classes the replica survives with liveness, the default for
//   `vopr run` and the fixed seed sets.
//
// The replica's effects do not pass through here: the simulator runs every replica through the
// node's effect driver (src/vsr/effect_driver.ts) with simulated sinks (sim_sinks.ts), so an
// effect kind added to src/vsr/message.ts fails the driver's exhaustive switch at compile time
// until it has a sink; the simulator cannot silently skip one.

import { asOp, asReplicaIndex, asView } from '../core/types.js';
import type { KernelOutput } from '../kernel/kernel.js';
import { Replica } from '../vsr/replica.js';
import type { Canary, ReplicaOptions, StateMachine } from '../vsr/replica.js';
import type { Prng } from './prng.js';
import type { SuperblockState } from './sim_storage.js';

export type SimReplica = Replica<KernelOutput>;
/** What the shell tells finishRecovery about the journal it replayed. */
export type RecoveryReport = NonNullable<Parameters<SimReplica['finishRecovery']>[0]>;

/**
 * The known bugs the replica can switch on (ReplicaOptions.canary), to prove the checkers catch
 * them (DESIGN §8). The `satisfies` keeps this list and the replica's Canary type identical.
 */
export const canaryNames = [
  'ack_before_fsync',
  'commit_without_quorum',
  'adopt_wrong_log',
  'skip_repair_checksum',
  'no_duplicate_detection',
  'trust_peer_numbers',
] as const satisfies readonly Canary[];
export type CanaryName = (typeof canaryNames)[number];
/** Compiles only while every Canary of the replica is listed above (else names the missing). */
export const canaryListComplete: [Exclude<Canary, CanaryName>] extends [never]
  ? true
  : Exclude<Canary, CanaryName> = true;

export function isCanaryName(value: string): value is CanaryName {
  return (canaryNames as readonly string[]).includes(value);
}

export interface ReplicaTuning {
  readonly pipelinePrepareCountMax: number;
  readonly prepareRequestCountMax: number;
  readonly clientSessionCountMax: number;
  readonly heartbeatTicks: number;
  readonly scrubReadsPerTickMax: number;
  readonly clockSync: boolean;
}

export interface CreateReplicaArgs {
  readonly cluster: number;
  readonly replica: number;
  readonly replicaCount: number;
  readonly stateMachine: StateMachine<KernelOutput>;
  readonly realtimeUs: () => number;
  readonly rootChecksum: Uint8Array;
  readonly superblock: SuperblockState;
  readonly prng: Prng;
  readonly canary: CanaryName | null;
  readonly tuning: ReplicaTuning;
}

export function createReplica(args: CreateReplicaArgs): SimReplica {
  const options: ReplicaOptions<KernelOutput> = {
    cluster: args.cluster,
    replica: asReplicaIndex(args.replica),
    replicaCount: args.replicaCount,
    stateMachine: args.stateMachine,
    realtimeUs: args.realtimeUs,
    view: asView(args.superblock.view),
    logView: asView(args.superblock.logView),
    commit: asOp(args.superblock.commit),
    rootChecksum: args.rootChecksum,
    ...args.tuning,
    prng: args.prng,
    ...(args.canary === null ? {} : { canary: args.canary }),
  };
  return new Replica<KernelOutput>(options);
}

/**
 * The fault classes the replica in this tree survives with liveness, used when `vopr run` is
 * given no --faults and by the fixed seed sets. Keep this in step with src/vsr: since view
 * change, recovery and repair landed (511195d), that is every class for every cluster size; a
 * feature still being built can be left out here until it is live.
 */
export function supportedFaults(replicaCount: number): string {
  return replicaCount >= 1 ? 'network,storage,crash,clock' : 'none';
}
