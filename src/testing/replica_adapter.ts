// The one seam between the simulator and the replica's API (src/vsr/replica.ts and the
// effect contract in src/vsr/message.ts). Everything the simulator needs of the replica goes
// through here, so that when the API grows only this file has to follow:
//
// - createReplica(): builds a Replica with the real kernel state machine, the injected wall
//   clock and PRNG, the durable superblock state (view, log view, commit), and the canary;
// - toSimEffect(): turns each effect into a closed union the harness switches on; an effect kind
//   added to message.ts later is reported as `unknown` (listed in the run's stats) until the
//   simulator learns to perform it;
// - supportedFaults(): the fault classes the replica survives with liveness, the default for
//   `vopr run` and the fixed seed sets.

import type { Prepare } from '../core/header.js';
import { asOp, asReplicaIndex, asView } from '../core/types.js';
import type { ClientId, ReplicaIndex, RequestNumber } from '../core/types.js';
import type { ErrorCode } from '../core/errors.js';
import type { KernelOutput } from '../node/kernel_state_machine.js';
import type {
  Effect,
  JournalReadContext,
  Reply,
  ReplicaEvent,
  ReplicaMessage,
} from '../vsr/message.js';
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

/** Every effect the simulator knows how to perform, today's and the announced ones. */
export type SimEffect =
  | { readonly kind: 'journal_append'; readonly prepare: Prepare }
  | { readonly kind: 'journal_truncate'; readonly opMax: number }
  | {
      readonly kind: 'journal_read';
      readonly op: number;
      readonly checksum: Uint8Array | null;
      readonly context: JournalReadContext;
    }
  | { readonly kind: 'superblock_write'; readonly superblock: SuperblockState }
  | { readonly kind: 'send'; readonly target: ReplicaIndex; readonly message: ReplicaMessage }
  | { readonly kind: 'reply'; readonly reply: Reply }
  | {
      readonly kind: 'reject';
      readonly clientId: ClientId;
      readonly requestNumber: RequestNumber;
      readonly code: ErrorCode;
      readonly leaderHint: number;
    }
  | Extract<Effect<KernelOutput>, { kind: 'applied' }>
  | { readonly kind: 'reads_ready'; readonly view: number; readonly op: number }
  | { readonly kind: 'event'; readonly event: ReplicaEvent<KernelOutput> }
  | { readonly kind: 'unknown'; readonly name: string };

export function toSimEffect(effect: Effect<KernelOutput>): SimEffect {
  switch (effect.kind) {
    case 'journal_append':
    case 'journal_truncate':
    case 'journal_read':
    case 'send':
    case 'reply':
    case 'applied':
    case 'reads_ready':
    case 'event':
      return effect;
    case 'superblock_write': {
      const { view, logView, commit } = effect;
      return { kind: 'superblock_write', superblock: { view, logView, commit } };
    }
    case 'reject':
      return {
        kind: 'reject',
        clientId: effect.clientId,
        requestNumber: effect.requestNumber,
        code: effect.code,
        leaderHint: effect.leaderHint,
      };
    default:
      // A kind added to message.ts after this file: counted and reported, never performed.
      return { kind: 'unknown', name: (effect as { kind: string }).kind };
  }
}

export function callOnJournalRead(
  replica: SimReplica,
  op: number,
  prepare: Prepare | null,
  context: JournalReadContext,
): Effect<KernelOutput>[] {
  return replica.onJournalRead(asOp(op), prepare, context);
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
