// The simulated shell of one scenario replica (testing_harness.test-support.ts): its disk, its
// state machine, what it has recorded, and the sinks its EffectDriver (effect_driver.ts) hands
// the replica's effects to. The harness runs each replica through the production driver, so the
// dispatch of effects to duties is the node's and the simulator's; only these sinks are
// simulated. There is no effect switch here: each sink does one duty of message.ts.
//
// The disk (Storage): a write is visible at once and durable only once synced; a crash loses
// what was not synced (a rewrite that was lost restores the durable record it replaced); reads
// and the superblock write complete when the harness completes storage work, at most one
// superblock write outstanding. What the sinks record for the safety checks: every request the
// `executed` effects applied (and any applied twice since the last start), the latest
// `reads_ready` and every `quorum_changed`, and the telemetry events the tests inspect.

import { assert } from '../core/assert.js';
import { checksumEqual } from '../core/checksum.js';
import { clusterIdFromName, rootPrepare } from '../core/header.js';
import type { Prepare } from '../core/header.js';
import type { Op } from '../core/types.js';
import { EffectDriver } from './effect_driver.js';
import type { Rejection, ReplicaSinks } from './effect_driver.js';
import type {
  ExecutedOp,
  JournalReadContext,
  Reply,
  ReplicaEvent,
  ReplicaMessage,
} from './message.js';
import type { Replica, StateMachine } from './replica.js';

export const testCluster = clusterIdFromName('scenario');
export const testRoot = rootPrepare(testCluster).header.checksum;

/** The state machine: sums the first byte of each command. */
export class Counter implements StateMachine<number> {
  total = 0;
  applyCount = 0;

  apply(body: Uint8Array): { result: Uint8Array; output: number } {
    this.total += body[0] ?? 0;
    this.applyCount += 1;
    return { result: Uint8Array.of(this.total & 0xff), output: this.total };
  }
}

/** The largest view the wire and the superblock hold (a u32). */
const viewMax = 0xffff_ffff;

/** Event kinds too frequent to keep (one per op or per request). */
const unkeptEvents = new Set(['applied', 'committed', 'prepared', 'repair_completed']);

export interface Slot {
  prepare: Prepare;
  corrupt: boolean;
  durable: boolean;
  /** The durable record a pending rewrite replaced (restored if the rewrite is lost). */
  underneath: Slot | null;
}

export interface SuperblockState {
  view: number;
  logView: number;
  commit: number;
}

/** One replica's disk. */
export class Storage {
  readonly slots = new Map<number, Slot>();
  superblock: SuperblockState = { view: 0, logView: 0, commit: 0 };
  pendingSuperblock: SuperblockState | null = null;
  pendingWrites: { op: number; checksum: Uint8Array }[] = [];
  pendingReads: { op: Op; checksum: Uint8Array | null; context: JournalReadContext }[] = [];

  append(prepare: Prepare): void {
    const op = prepare.header.op;
    const previous = this.slots.get(op);
    const underneath = previous?.durable === true ? previous : (previous?.underneath ?? null);
    this.slots.set(op, { prepare, corrupt: false, durable: false, underneath });
    this.pendingWrites.push({ op, checksum: prepare.header.checksum });
  }

  truncate(opMax: number): void {
    for (const op of [...this.slots.keys()]) if (op > opMax) this.slots.delete(op);
    this.pendingWrites = this.pendingWrites.filter((write) => write.op <= opMax);
  }

  /** Makes every pending write durable; returns them in order. */
  sync(): { op: number; checksum: Uint8Array }[] {
    const written = this.pendingWrites;
    this.pendingWrites = [];
    for (const { op } of written) {
      const slot = this.slots.get(op);
      if (slot !== undefined) {
        slot.durable = true;
        slot.underneath = null;
      }
    }
    return written;
  }

  read(op: number, checksum: Uint8Array | null): Prepare | null {
    const slot = this.slots.get(op);
    if (slot === undefined || slot.corrupt) return null;
    if (checksum !== null && !checksumEqual(slot.prepare.header.checksum, checksum)) return null;
    return slot.prepare;
  }

  /** The process died: what was not synced is lost. */
  crash(): void {
    for (const { op } of this.pendingWrites) {
      const slot = this.slots.get(op);
      if (slot === undefined || slot.durable) continue;
      if (slot.underneath !== null) this.slots.set(op, slot.underneath);
      else this.slots.delete(op);
    }
    this.pendingWrites = [];
    this.pendingSuperblock = null;
    this.pendingReads = [];
  }

  /** The records a restart replays: from op 1 while present, intact and chained. */
  replay(): { prepares: Prepare[]; intact: boolean } {
    const prepares: Prepare[] = [];
    let parent = testRoot;
    for (let op = 1; ; op++) {
      const slot = this.slots.get(op);
      if (slot === undefined) return { prepares, intact: true };
      if (slot.corrupt || !checksumEqual(slot.prepare.header.parent, parent)) {
        return { prepares, intact: false };
      }
      prepares.push(slot.prepare);
      parent = slot.prepare.header.checksum;
    }
  }

  /** Whether a durable record is corrupt (what a crash and restart would find). */
  get corruptDurably(): boolean {
    for (const slot of this.slots.values()) {
      const durable = slot.durable ? slot : slot.underneath;
      if (durable?.corrupt === true) return true;
    }
    return false;
  }

  get opMax(): number {
    let max = 0;
    for (const op of this.slots.keys()) if (op > max) max = op;
    return max;
  }
}

/** What a replica's sinks reach outside it: the network, the clients, the safety record. */
export interface HarnessWires {
  /** A message from replica `from` to replica `to` enters the network. */
  send(from: number, to: number, message: ReplicaMessage): void;
  reply(reply: Reply): void;
  reject(rejection: Rejection): void;
  /** A view beyond what the wire and the superblock hold was sent or persisted. */
  unencodable(what: string): void;
}

/** One `quorum_changed` data effect, as recorded. */
export interface QuorumChange {
  readonly view: number;
  readonly reachable: boolean;
}

export class SimNode {
  /** The driver of the running replica; null while the process is down. */
  private running: EffectDriver<number> | null = null;
  machine = new Counter();
  readonly storage = new Storage();
  readonly events: ReplicaEvent<number>[] = [];
  /** client:request of every command applied since the last start, and those applied twice. */
  applied = new Set<string>();
  readonly appliedTwice: string[] = [];
  /** The latest reads_ready effect: linearizable reads wait for the execution of its op. */
  readsReadyView = 0;
  readsReadyOp = 0;
  /** Every quorum_changed effect, in order. */
  readonly quorumChanges: QuorumChange[] = [];
  /** Whether it ever started (its data directory exists). */
  started = false;
  /** How far this replica's wall clock is off, in microseconds. */
  clockOffsetUs = 0;
  /** Writes stay pending (a slow disk) while true. */
  syncStalled = false;

  constructor(readonly index: number) {}

  /** The process starts: `replica` (over this node's machine) runs through the one driver. */
  run(replica: Replica<number>, wires: HarnessWires): EffectDriver<number> {
    assert(this.running === null, `replica ${this.index} is already running`);
    this.running = new EffectDriver(replica, this.sinks(wires));
    return this.running;
  }

  /** The process dies. */
  stop(): void {
    this.running = null;
  }

  get replica(): Replica<number> | null {
    return this.running?.replica ?? null;
  }

  get alive(): boolean {
    return this.running !== null;
  }

  get r(): Replica<number> {
    return this.driver.replica;
  }

  get driver(): EffectDriver<number> {
    assert(this.running !== null, `replica ${this.index} is down`);
    return this.running;
  }

  eventsOf<K extends ReplicaEvent<number>['kind']>(kind: K) {
    return this.events.filter(
      (e): e is Extract<ReplicaEvent<number>, { kind: K }> => e.kind === kind,
    );
  }

  private sinks(wires: HarnessWires): ReplicaSinks<number> {
    const { storage, index } = this;
    return {
      storage: {
        append: (prepare) => storage.append(prepare),
        truncate: (opMax) => storage.truncate(opMax),
        read: (op, checksum, context) => storage.pendingReads.push({ op, checksum, context }),
        writeSuperblock: ({ view, logView, commit }) => {
          if (view > viewMax) wires.unencodable(`replica ${index} persisted view ${view}`);
          assert(storage.pendingSuperblock === null, 'one superblock write at a time');
          storage.pendingSuperblock = { view, logView, commit };
        },
      },
      peers: {
        send: (target, message) => {
          if (message.view > viewMax) {
            wires.unencodable(`replica ${index} sent view ${message.view}`);
          }
          wires.send(index, target, message);
        },
      },
      clients: { reply: (reply) => wires.reply(reply), reject: (r) => wires.reject(r) },
      views: { executed: (op) => this.noteExecuted(op) },
      reads: {
        readsReady: (view, op) => {
          this.readsReadyView = view;
          this.readsReadyOp = op;
        },
        quorumChanged: (view, reachable) => this.quorumChanges.push({ view, reachable }),
      },
      observer: { event: (event) => this.noteEvent(event) },
    };
  }

  /** The exactly-once record: each command of the op, keyed by client and request number. */
  private noteExecuted(executed: ExecutedOp<number>): void {
    for (const request of executed.applied) {
      assert(request.op === executed.op, 'an executed op lists only its own requests');
      if (request.operation !== 'command') continue;
      const key = `${request.clientId}#${request.requestNumber}`;
      if (this.applied.has(key)) this.appliedTwice.push(key);
      this.applied.add(key);
    }
  }

  private noteEvent(event: ReplicaEvent<number>): void {
    const rewrite = event.kind === 'repair_completed' && event.how === 'rewrite';
    if (!unkeptEvents.has(event.kind) || rewrite) this.events.push(event);
  }
}
