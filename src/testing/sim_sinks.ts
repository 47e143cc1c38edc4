// The simulated sinks of one replica incarnation: what the simulator plugs into the one effect
// driver (src/vsr/effect_driver.ts), the very class the node runs its replica through. The
// driver owns the effect switch; this file only says what each duty means in the simulated
// world:
//
//   storage   appends go to the simulated disk (a deep copy) and are reported durable
//             (driver.journalDurable) only when their write completes on the agenda; reads and
//             superblock writes likewise complete later, through driver.journalRead and
//             driver.superblockDurable. A superblock view beyond its u32 is a crash: the node's
//             superblock codec would refuse it and the process would die.
//   peers     the simulated network (the cluster encodes each message with the real codec first);
//   clients   replies and rejections go back to the clients over the network;
//   views     nothing: the simulator keeps no derived views, it serves reads from the kernel
//             state its SimNode mirrors;
//   reads     the node's own ReadGate (src/node/read_gate.ts), one per incarnation;
//   observer  every effect is folded into the run's trace hash (replica index, then the effect)
//             before it is performed; telemetry events feed the checkers and the run's stats.
//
// Invariant: a driver belongs to one incarnation (its epoch); a completion scheduled by an
// earlier incarnation is dropped by the cluster before it reaches a driver.

import { assert } from '../core/assert.js';
import type { Prepare } from '../core/header.js';
import type { Op } from '../core/types.js';
import type { KernelOutput } from '../kernel/kernel.js';
import { EffectDriver } from '../vsr/effect_driver.js';
import type {
  EnterReplica,
  ReplicaSinks,
  StorageSink,
  SuperblockFields,
} from '../vsr/effect_driver.js';
import type { JournalReadContext, ReplicaEvent, ReplicaMessage } from '../vsr/message.js';
import type { SafetyChecker } from './checkers.js';
import { deepCopy } from './deep.js';
import type { TraceHash } from './deep.js';
import type { SimReplica } from './replica_adapter.js';
import type { SimNode } from './sim_node.js';
import type { ReplicaToClient } from './workload.js';

/** An exception thrown by replica (or kernel) code: the process would have died. */
export class ReplicaCrash extends Error {
  constructor(
    readonly replica: number,
    readonly entry: string,
    readonly error: unknown,
  ) {
    const detail = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
    super(`replica ${replica} threw in ${entry}: ${detail}`);
    this.name = 'ReplicaCrash';
  }
}

/** A disk operation's completion, due on the agenda; tagged with the incarnation that began it. */
export type DiskCompletion =
  | { kind: 'write_done'; replica: number; epoch: number; writeId: number; op: number }
  | {
      kind: 'read_done';
      replica: number;
      epoch: number;
      op: Op;
      checksum: Uint8Array | null;
      context: JournalReadContext;
    }
  | { kind: 'superblock_done'; replica: number; epoch: number };

/** What the sinks need of the cluster around them. */
export interface SimWorld {
  readonly trace: TraceHash;
  readonly checker: SafetyChecker;
  /** Replica events by kind, for the run's statistics. */
  readonly eventCounts: Map<string, number>;
  readonly stats: { statusChanges: number };
  /** The durable_before_fsync shell mutation (cluster.ts): report durable as a write starts. */
  readonly durableBeforeFsync: boolean;
  now(): number;
  schedule(delayTicks: number, completion: DiskCompletion): void;
  replicaSend(from: number, to: number, message: ReplicaMessage): void;
  toClient(from: number, clientId: string, message: ReplicaToClient): void;
}

/** The largest view the superblock holds (a u32, as on the wire). */
const superblockViewMax = 0xffff_ffff;

/**
 * The driver of one incarnation of `node`: its sinks perform effects in the simulated world,
 * and its `enter` hook turns an exception from any replica entry point into a ReplicaCrash.
 */
export function createSimDriver(
  node: SimNode,
  replica: SimReplica,
  world: SimWorld,
): EffectDriver<KernelOutput> {
  const epoch = node.epoch;
  const enter: EnterReplica<KernelOutput> = (entry, call) => {
    assert(node.epoch === epoch, 'enter the running incarnation of a replica');
    try {
      return call();
    } catch (error) {
      throw new ReplicaCrash(node.index, entry, error);
    }
  };
  return new EffectDriver(replica, simSinks(node, world), enter);
}

function simSinks(node: SimNode, world: SimWorld): ReplicaSinks<KernelOutput> {
  const from = node.index;
  return {
    storage: storageSink(node, world),
    peers: { send: (target, message) => world.replicaSend(from, target, message) },
    clients: {
      reply: (reply) => world.toClient(from, reply.clientId, { kind: 'reply', reply }),
      reject: ({ clientId, requestNumber, code, leaderHint }) =>
        world.toClient(from, clientId, { kind: 'reject', requestNumber, code, leaderHint }),
    },
    views: { executed: () => undefined },
    reads: node.readGate,
    observer: {
      effect: (effect) => {
        world.trace.add(from);
        world.trace.add(effect);
      },
      event: (event) => onEvent(node, world, event),
    },
  };
}

function storageSink(node: SimNode, world: SimWorld): StorageSink {
  const { index: replica, epoch, storage } = node;
  return {
    append: (prepare: Prepare) => append(node, world, deepCopy(prepare)),
    truncate: (opMax: Op) => storage.truncate(opMax),
    read: (op: Op, checksum: Uint8Array | null, context: JournalReadContext) => {
      const item: DiskCompletion = { kind: 'read_done', replica, epoch, op, checksum, context };
      world.schedule(storage.readDelayTicks(), item);
    },
    writeSuperblock: (fields: SuperblockFields) => {
      if (fields.view > superblockViewMax) {
        const error = new Error(`superblock view ${fields.view} beyond the u32`);
        throw new ReplicaCrash(replica, 'superblock_write', error);
      }
      const delayTicks = storage.startSuperblockWrite(fields);
      world.schedule(delayTicks, { kind: 'superblock_done', replica, epoch });
    },
  };
}

/** Starts a journal write; its completion (write + fsync) is reported when it is due. */
function append(node: SimNode, world: SimWorld, prepare: Prepare): void {
  const { writeId, delayTicks } = node.storage.write(prepare, world.now());
  const { op, checksum } = prepare.header;
  if (world.durableBeforeFsync) {
    node.runningDriver().journalDurable(op, checksum);
    return; // The write still completes on the disk, but is never reported again.
  }
  const { index: replica, epoch } = node;
  world.schedule(delayTicks, { kind: 'write_done', replica, epoch, writeId, op });
}

function onEvent(node: SimNode, world: SimWorld, event: ReplicaEvent<KernelOutput>): void {
  world.eventCounts.set(event.kind, (world.eventCounts.get(event.kind) ?? 0) + 1);
  if (event.kind === 'committed') {
    const prepare = node.storage.peek(event.op);
    world.checker.onCommitted(node.index, event.op, node.committedOp + 1, prepare);
    node.committedOp = event.op;
  } else if (event.kind === 'status_changed') {
    world.stats.statusChanges += 1;
  }
}
