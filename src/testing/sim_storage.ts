// One replica's simulated disk: a journal of prepares keyed by op, and a superblock.
//
// Journal: a write is visible to reads at once (as in a page cache) but becomes durable only
// when its completion tick is reached; completions are FIFO per replica (group commit: a sync
// covers everything written before it), so "op k is durable" implies every earlier write is.
// On a crash, writes that were not durable are resolved: without storage faults they are all
// lost (the journal is cut exactly at the durability point); with storage faults a prefix of
// them may have reached the disk anyway (they become durable) and the first write that did not
// may be torn (its record is left corrupt). A durable record can also be corrupted later by
// a storage fault (a flipped byte), which reads and the restart replay detect through the
// header checksum and the body checksum, exactly as the real journal does.
//
// Reads for the replica may also fail transiently (a storage fault on at most f replicas).
//
// Superblock: {view, logView, commit}; a write becomes durable after a latency; a crash loses
// a pending write (or, with storage faults, may keep it: the real superblock has copies, so a
// torn write leaves either the old or the new state, never garbage).
//
// Invariants: at most one record per op; a record is durable only after its write completed
// or a crash resolved it; `everDurable` only grows (it is the evidence the checkers use for
// "committed only with a durable quorum").

import { assert } from '../core/assert.js';
import { checksumEqual, toHex } from '../core/checksum.js';
import { bodyMatches, decodeHeader } from '../core/header.js';
import type { Prepare } from '../core/header.js';
import type { Prng } from './prng.js';

export interface SuperblockState {
  readonly view: number;
  readonly logView: number;
  readonly commit: number;
}

export interface StorageOptions {
  readonly writeLatencyMinTicks: number;
  readonly writeLatencyMaxTicks: number;
  /** Per write: a slow write (a latency spike) of up to writeSpikeTicksMax. */
  readonly writeSpikeProbability: number;
  readonly writeSpikeTicksMax: number;
  readonly readLatencyMinTicks: number;
  readonly readLatencyMaxTicks: number;
  /** At a crash: probability that each further un-synced write reached the disk anyway. */
  readonly crashWriteSurvivalProbability: number;
  /** At a crash: probability that the first lost write is torn (left corrupt). */
  readonly crashTornProbability: number;
  /** At a crash: probability that a pending superblock write survives. */
  readonly crashSuperblockSurvivalProbability: number;
  /** Per journal_read: the read fails (answers null) although the record is intact. */
  readonly readFaultProbability: number;
}

interface Slot {
  prepare: Prepare;
  durable: boolean;
  /** Left corrupt by a crash in the middle of its write: never durable, never acknowledged. */
  torn: boolean;
  /** The write that produced this record while it is not durable, else 0. */
  writeId: number;
  /** The durable record this write replaces, restored if the write is lost in a crash. */
  underneath: Slot | null;
}

export type ReplayStop = 'end' | 'torn_tail' | 'corrupt' | 'chain';

export class SimStorage {
  private readonly slots = new Map<number, Slot>();
  /** Write ids not yet durable, in write order. */
  private pendingWrites: { writeId: number; op: number }[] = [];
  private writeIdNext = 1;
  private lastWriteDoneTick = 0;
  superblock: SuperblockState = { view: 0, logView: 0, commit: 0 };
  private pendingSuperblocks: SuperblockState[] = [];
  /** `${op}:${checksum hex}` of every record that was ever durable here. */
  readonly everDurable = new Set<string>();
  readonly stats = { writes: 0, corruptions: 0, tornWrites: 0, survivedWrites: 0, readFaults: 0 };

  constructor(
    private readonly prng: Prng,
    private options: StorageOptions,
  ) {}

  /** Starts a write; returns its id and the ticks until it is durable. */
  write(prepare: Prepare, now: number): { writeId: number; delayTicks: number } {
    const options = this.options;
    let latency = this.prng.intInclusive(
      options.writeLatencyMinTicks,
      options.writeLatencyMaxTicks,
    );
    if (this.prng.chance(options.writeSpikeProbability)) {
      latency += this.prng.intInclusive(1, options.writeSpikeTicksMax);
    }
    const doneTick = Math.max(now + latency, this.lastWriteDoneTick);
    this.lastWriteDoneTick = doneTick;
    const op = prepare.header.op;
    const previous = this.slots.get(op);
    const underneath =
      previous === undefined ? null : previous.durable ? previous : previous.underneath;
    const writeId = this.writeIdNext++;
    this.slots.set(op, { prepare, durable: false, torn: false, writeId, underneath });
    this.pendingWrites.push({ writeId, op });
    this.stats.writes += 1;
    return { writeId, delayTicks: doneTick - now };
  }

  /**
   * Completes a write. Returns the prepare now durable, or null when the write was superseded
   * (its op was truncated or written again) and there is nothing to report.
   */
  writeDone(writeId: number, op: number): Prepare | null {
    const head = this.pendingWrites[0];
    assert(head !== undefined && head.writeId === writeId, 'writes complete in order');
    this.pendingWrites.shift();
    const slot = this.slots.get(op);
    if (slot === undefined || slot.writeId !== writeId) return null;
    this.makeDurable(slot);
    return slot.prepare;
  }

  /** Marks a record as on the disk; `intact` is false for a torn write (never evidence). */
  private makeDurable(slot: Slot, intact = true): void {
    slot.durable = true;
    slot.writeId = 0;
    slot.underneath = null;
    if (!intact) return;
    this.everDurable.add(durableKey(slot.prepare.header.op, slot.prepare.header.checksum));
  }

  /** Discards every record above `opMax`, durable or not (a truncation is durable at once). */
  truncate(opMax: number): void {
    for (const op of [...this.slots.keys()]) if (op > opMax) this.slots.delete(op);
  }

  /**
   * A journal_read for the replica: null when the record is missing, corrupt, not the asked-for
   * checksum, or (a storage fault) the read itself fails.
   */
  readForReplica(op: number, checksum: Uint8Array | null): Prepare | null {
    if (this.prng.chance(this.options.readFaultProbability)) {
      this.stats.readFaults += 1;
      return null;
    }
    return this.read(op, checksum);
  }

  /** Reads a record, verifying it; null when missing, corrupt, or not the asked-for checksum. */
  read(op: number, checksum: Uint8Array | null): Prepare | null {
    const slot = this.slots.get(op);
    if (slot === undefined) return null;
    const verified = verify(slot.prepare);
    if (verified === null || verified.header.op !== op) return null;
    if (checksum !== null && !checksumEqual(verified.header.checksum, checksum)) return null;
    return verified;
  }

  /** Ticks until a read started now completes. */
  readDelayTicks(): number {
    return this.prng.intInclusive(
      this.options.readLatencyMinTicks,
      this.options.readLatencyMaxTicks,
    );
  }

  /** The record at `op` as written (unverified), for the checkers; undefined when absent. */
  peek(op: number): Prepare | undefined {
    return this.slots.get(op)?.prepare;
  }

  /** Flips one byte of one durable record, chosen by the PRNG; false when there is none. */
  corruptRandomRecord(): boolean {
    const durable = [...this.slots.values()].filter((s) => s.durable && !s.torn);
    if (durable.length === 0) return false;
    const slot = this.prng.pick(durable);
    slot.prepare = flipByte(slot.prepare, this.prng);
    this.stats.corruptions += 1;
    return true;
  }

  startSuperblockWrite(state: SuperblockState): number {
    this.pendingSuperblocks.push(state);
    return this.prng.intInclusive(
      this.options.writeLatencyMinTicks,
      this.options.writeLatencyMaxTicks,
    );
  }

  /** Completes the oldest pending superblock write; false if a crash discarded it. */
  superblockDone(): boolean {
    const state = this.pendingSuperblocks.shift();
    if (state === undefined) return false;
    this.superblock = state;
    return true;
  }

  /** Resolves every write that was not durable when the process died (see the file comment). */
  crash(): void {
    let surviving = true;
    for (const { writeId, op } of this.pendingWrites) {
      const slot = this.slots.get(op);
      if (slot === undefined || slot.writeId !== writeId) continue;
      surviving = surviving && this.prng.chance(this.options.crashWriteSurvivalProbability);
      if (surviving) {
        this.makeDurable(slot);
        this.stats.survivedWrites += 1;
      } else if (this.prng.chance(this.options.crashTornProbability)) {
        slot.prepare = flipByte(slot.prepare, this.prng);
        this.makeDurable(slot, false);
        slot.torn = true;
        this.stats.tornWrites += 1;
      } else if (slot.underneath !== null) {
        this.slots.set(op, slot.underneath);
      } else {
        this.slots.delete(op);
      }
    }
    this.pendingWrites = [];
    this.lastWriteDoneTick = 0;
    const last = this.pendingSuperblocks[this.pendingSuperblocks.length - 1];
    if (last !== undefined && this.prng.chance(this.options.crashSuperblockSurvivalProbability)) {
      this.superblock = last;
    }
    this.pendingSuperblocks = [];
  }

  /**
   * The durable journal as a restart replays it: from op 1, in order, while each record is
   * intact and continues the hash chain from `rootChecksum`. Replay stops at the first record
   * that is missing, corrupt or off the chain. A torn tail — torn writes and nothing else after
   * the last good record — is truncated, as the real journal does at start-up, and the journal
   * still counts as intact (nothing torn was ever acknowledged); any other stop leaves the
   * records on the disk and reports the journal not intact (it may have lost what it acked).
   */
  replay(rootChecksum: Uint8Array): { prepares: Prepare[]; stop: ReplayStop; intact: boolean } {
    assert(this.pendingWrites.length === 0, 'replay after crash() resolved pending writes');
    const prepares: Prepare[] = [];
    let parent = rootChecksum;
    for (let op = 1; ; op++) {
      const slot = this.slots.get(op);
      if (slot === undefined) return { prepares, stop: 'end', intact: true };
      const verified = verify(slot.prepare);
      if (verified === null || verified.header.op !== op) {
        if (!this.tornTail(op)) return { prepares, stop: 'corrupt', intact: false };
        this.truncate(op - 1);
        return { prepares, stop: 'torn_tail', intact: true };
      }
      if (!checksumEqual(verified.header.parent, parent)) {
        return { prepares, stop: 'chain', intact: false };
      }
      prepares.push(verified);
      parent = verified.header.checksum;
    }
  }

  /** Whether every record from `op` on is a torn write. */
  private tornTail(op: number): boolean {
    for (const [slotOp, slot] of this.slots) if (slotOp >= op && !slot.torn) return false;
    return true;
  }

  /** Ends storage faults for the liveness phase: plain latencies from now on. */
  heal(options: StorageOptions): void {
    this.options = options;
  }
}

export function durableKey(op: number, checksum: Uint8Array): string {
  return `${op}:${toHex(checksum)}`;
}

/** Decodes and checks a stored record; null when any checksum fails. */
function verify(prepare: Prepare): Prepare | null {
  const decoded = decodeHeader(prepare.headerBytes);
  if (!decoded.ok) return null;
  if (!bodyMatches(decoded.header, prepare.body)) return null;
  return {
    header: decoded.header,
    headerBytes: prepare.headerBytes.slice(),
    body: prepare.body.slice(),
  };
}

/** A copy of the record with one bit flipped in its header or its body. */
function flipByte(prepare: Prepare, prng: Prng): Prepare {
  const headerBytes = prepare.headerBytes.slice();
  const body = prepare.body.slice();
  const total = headerBytes.length + body.length;
  const at = prng.below(total);
  const bit = 1 << prng.below(8);
  if (at < headerBytes.length) headerBytes[at] = (headerBytes[at] ?? 0) ^ bit;
  else body[at - headerBytes.length] = (body[at - headerBytes.length] ?? 0) ^ bit;
  return { header: prepare.header, headerBytes, body };
}
