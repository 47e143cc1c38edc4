// The one seam between the simulator and the replica's API, which is growing (view change,
// recovery, repair, clock sync and scrubbing are being added in src/vsr). Everything the
// simulator needs of the replica goes through here:
//
// - createReplica(): builds a Replica with the real kernel state machine, the injected wall
//   clock and PRNG, the durable superblock state, and the canary option;
// - toSimEffect(): turns each effect into a closed union the harness switches on. Effect kinds
//   the replica may not emit yet (journal_truncate, journal_read, superblock_write) are
//   recognised by their `kind` string and validated field by field, so this file compiles
//   against today's message.ts and keeps working when those kinds join the union;
// - callOnJournalRead() / callOnSuperblockDurable(): entry points that may not exist yet.
//
// When the replica's API settles, the loose parts below become plain typed calls; nothing else
// in src/testing should have to change.

import { assert } from '../core/assert.js';
import type { Prepare } from '../core/header.js';
import { asOp, asReplicaIndex, asView } from '../core/types.js';
import type { ClientId, Op, ReplicaIndex, RequestNumber, View } from '../core/types.js';
import type { ErrorCode } from '../core/errors.js';
import type { KernelOutput } from '../node/kernel_state_machine.js';
import type { Effect, Reply, ReplicaEvent, ReplicaMessage } from '../vsr/message.js';
import { Replica } from '../vsr/replica.js';
import type { ReplicaOptions, StateMachine } from '../vsr/replica.js';
import type { Prng } from './prng.js';
import type { SuperblockState } from './sim_storage.js';

export type SimReplica = Replica<KernelOutput>;

/** The known bugs the replica can switch on, to prove the checkers catch them (DESIGN §8). */
export const canaryNames = [
  'ack_before_fsync',
  'commit_without_quorum',
  'adopt_wrong_log',
  'skip_repair_checksum',
  'no_duplicate_detection',
] as const;
export type CanaryName = (typeof canaryNames)[number];

export function isCanaryName(value: string): value is CanaryName {
  return (canaryNames as readonly string[]).includes(value);
}

/**
 * Options the replica is gaining (src/vsr/replica_options.ts in progress); passed through a
 * wider type so that this compiles whether or not ReplicaOptions has them yet.
 */
interface FutureReplicaOptions {
  readonly canary?: CanaryName;
  readonly prng?: { float(): number };
  readonly logView?: View;
  readonly commit?: Op;
  readonly scrubReadsPerTickMax?: number;
  readonly clockSync?: boolean;
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
  const options: ReplicaOptions<KernelOutput> & FutureReplicaOptions = {
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
      readonly context: unknown;
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
  | { readonly kind: 'event'; readonly event: ReplicaEvent<KernelOutput> }
  | { readonly kind: 'unknown'; readonly name: string };

export function toSimEffect(effect: Effect<KernelOutput>): SimEffect {
  switch (effect.kind) {
    case 'journal_append':
    case 'send':
    case 'reply':
    case 'event':
      return effect;
    case 'reject':
      return {
        kind: 'reject',
        clientId: effect.clientId,
        requestNumber: effect.requestNumber,
        code: effect.code,
        leaderHint: effect.leaderHint,
      };
    default:
      return looseEffect(effect as unknown as { kind: string } & Record<string, unknown>);
  }
}

/** Recognises the announced effect kinds by name, checking each field it uses. */
function looseEffect(effect: { kind: string } & Record<string, unknown>): SimEffect {
  const num = (name: string): number => {
    const value = effect[name];
    assert(typeof value === 'number' && Number.isSafeInteger(value), `${effect.kind}.${name}`);
    return value;
  };
  switch (effect.kind) {
    case 'journal_truncate':
      return { kind: 'journal_truncate', opMax: num('opMax') };
    case 'journal_read': {
      const checksum = effect['checksum'];
      assert(checksum === null || checksum instanceof Uint8Array, 'journal_read.checksum');
      return { kind: 'journal_read', op: num('op'), checksum, context: effect['context'] };
    }
    case 'superblock_write':
      return {
        kind: 'superblock_write',
        superblock: { view: num('view'), logView: num('logView'), commit: num('commit') },
      };
    default:
      return { kind: 'unknown', name: effect.kind };
  }
}

type LooseEntry = (...args: unknown[]) => Effect<KernelOutput>[];

function entryPoint(replica: SimReplica, name: string): LooseEntry {
  const method = (replica as unknown as Record<string, unknown>)[name];
  assert(typeof method === 'function', `the replica emitted an effect but has no ${name}()`);
  return (method as LooseEntry).bind(replica);
}

export function callOnJournalRead(
  replica: SimReplica,
  op: number,
  prepare: Prepare | null,
  context: unknown,
): Effect<KernelOutput>[] {
  return entryPoint(replica, 'onJournalRead')(op as Op, prepare, context);
}

export function callOnSuperblockDurable(replica: SimReplica): Effect<KernelOutput>[] {
  return entryPoint(replica, 'onSuperblockDurable')();
}

/**
 * The fault classes the replica in this tree survives with liveness, used when `vopr run` is
 * given no --faults. Keep this in step with src/vsr: today the replica has no view change,
 * repair or recovery protocol, so a multi-replica cluster cannot get past a lost prepare, a
 * partition or a crash (safety is still checked under any faults; liveness is not possible).
 */
export function supportedFaults(replicaCount: number): string {
  return replicaCount === 1 ? 'network,storage,crash,clock' : 'client_network,storage,clock';
}
