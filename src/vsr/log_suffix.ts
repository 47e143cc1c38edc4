// The part of the log a replica holds in memory: everything after its commit number (the ops it
// has not executed yet), never the whole log. Older ops live only in the journal and are read
// back through journal_read when a peer needs them.
//
// Positions, all ops:
//   baseOp       the last executed op (commitMin); its checksum is kept, so the suffix can be
//                checked against any log by the hash chain;
//   verifiedOp   ops up to here in the journal are known to belong to the current log (the view's
//                log, or the committed prefix); only verified ops may be executed;
//   journalOp    the head of the journal (appended, durable or not); the journal is contiguous;
//   anchorOp     the committed op a newer log was adopted from (start_view / do_view_change); when
//                it is beyond the journal, its entry holds its checksum until repair fills it;
//   headOp       the highest op known (entries may wait beyond a gap for repair).
//
// Invariants (check()): baseOp <= verifiedOp <= journalOp <= headOp; every op in
// baseOp+1..journalOp has a journaled entry with its prepare; entries beyond journalOp are not
// journaled; an anchor beyond the journal has an entry with anchorChecksum; at most
// constants.logEntryCountMax entries.

import { assert } from '../core/assert.js';
import { checksumEqual } from '../core/checksum.js';
import { constants } from '../core/constants.js';
import type { Prepare } from '../core/header.js';
import { asOp } from '../core/types.js';
import type { Op } from '../core/types.js';
import type { SuffixEntry } from './message.js';

export interface LogEntry {
  readonly op: Op;
  readonly checksum: Uint8Array;
  /** null while only the checksum is known: the prepare must be repaired from a peer. */
  prepare: Prepare | null;
  /** Appended to this replica's journal (ops up to journalOp). */
  journaled: boolean;
  /** The shell reported the append durable (written and fdatasynced). */
  durable: boolean;
  /**
   * The checksum comes from a log this replica adopted or holds (its journal, a start_view, a
   * chosen do_view_change, its primary's prepares); false for a repair prepare buffered ahead of
   * a gap, whose checksum is only its own claim until it chains to the journal.
   */
  readonly trusted: boolean;
}

/** A log to adopt: the committed prefix up to anchorOp, then a hash-chained suffix. */
export interface TargetLog {
  readonly anchorOp: Op;
  readonly anchorChecksum: Uint8Array;
  readonly suffix: readonly SuffixEntry[];
}

export type AdoptResult =
  /** truncatedTo: the journal was cut back to this op (the shell must truncate), or null. */
  | { readonly ok: true; readonly truncatedTo: Op | null; readonly truncatedFrom: Op }
  /** The target contradicts ops this replica already executed: it must not be adopted. */
  | { readonly ok: false };

export class LogSuffix {
  baseOp: Op;
  baseChecksum: Uint8Array;
  verifiedOp: Op;
  journalOp: Op;
  journalChecksum: Uint8Array;
  anchorOp: Op;
  anchorChecksum: Uint8Array;
  private readonly entries = new Map<number, LogEntry>();

  constructor(rootChecksum: Uint8Array) {
    this.baseOp = asOp(0);
    this.baseChecksum = rootChecksum;
    this.verifiedOp = asOp(0);
    this.journalOp = asOp(0);
    this.journalChecksum = rootChecksum;
    this.anchorOp = asOp(0);
    this.anchorChecksum = rootChecksum;
  }

  get size(): number {
    return this.entries.size;
  }

  get(op: number): LogEntry | undefined {
    return this.entries.get(op);
  }

  /** The highest op known to this replica's log. */
  get headOp(): Op {
    let head: number = this.journalOp;
    for (const op of this.entries.keys()) if (op > head) head = op;
    return asOp(head);
  }

  /** The checksum of `op` if this replica knows it from memory; null otherwise. */
  checksumAt(op: number): Uint8Array | null {
    if (op === this.baseOp) return this.baseChecksum;
    if (op === this.anchorOp) return this.anchorChecksum;
    return this.entries.get(op)?.checksum ?? null;
  }

  /** The committed point a view change message starts from: max(base, adoption anchor). */
  viewChangeAnchor(): { op: Op; checksum: Uint8Array } {
    if (this.anchorOp > this.baseOp) return { op: this.anchorOp, checksum: this.anchorChecksum };
    return { op: this.baseOp, checksum: this.baseChecksum };
  }

  /** Entries from anchor+1 while contiguous: the log this replica can vouch for. */
  contiguousFrom(op: number): LogEntry[] {
    const run: LogEntry[] = [];
    for (let next = op + 1; ; next++) {
      const entry = this.entries.get(next);
      if (entry === undefined) return run;
      run.push(entry);
    }
  }

  /**
   * How many requests the held prepares with op in (from, to] carry. Allocates nothing: the
   * replica's invariants count this after every entry point.
   */
  requestCountBetween(from: number, to: number): number {
    let count = 0;
    this.entries.forEach((entry, op) => {
      if (op > from && op <= to) count += entry.prepare?.header.requestCount ?? 0;
    });
    return count;
  }

  /** Entries with op in (from, to], in op order (missing ops skipped). */
  range(from: number, to: number): LogEntry[] {
    const found: LogEntry[] = [];
    for (const [op, entry] of this.entries) if (op > from && op <= to) found.push(entry);
    return found.sort((a, b) => a.op - b.op);
  }

  /** Appends the next prepare to the journal (the caller checked it continues the chain). */
  appendNext(prepare: Prepare): LogEntry {
    const header = prepare.header;
    assert(header.op === this.journalOp + 1, 'append the next op');
    assert(this.verifiedOp === this.journalOp, 'append only after a verified journal');
    assert(checksumEqual(header.parent, this.journalChecksum), 'append continues the chain');
    const pending = this.entries.get(header.op);
    if (pending !== undefined) assert(checksumEqual(pending.checksum, header.checksum));
    const entry: LogEntry = {
      op: header.op,
      checksum: header.checksum,
      prepare,
      journaled: true,
      durable: false,
      trusted: true,
    };
    this.entries.set(header.op, entry);
    this.journalOp = header.op;
    this.journalChecksum = header.checksum;
    this.verifiedOp = header.op;
    assert(this.entries.size <= constants.logEntryCountMax, 'log entries over their bound');
    return entry;
  }

  /** Records an op beyond the journal (waiting for the ops before it), or fills its prepare. */
  putPending(op: Op, checksum: Uint8Array, prepare: Prepare | null, trusted: boolean): void {
    assert(op > this.journalOp, 'pending entries lie beyond the journal');
    if (prepare !== null) assert(checksumEqual(prepare.header.checksum, checksum));
    const existing = this.entries.get(op);
    if (existing !== undefined) {
      assert(checksumEqual(existing.checksum, checksum), 'one checksum per pending op');
      if (existing.prepare === null) existing.prepare = prepare;
      return;
    }
    this.entries.set(op, { op, checksum, prepare, journaled: false, durable: false, trusted });
    assert(this.entries.size <= constants.logEntryCountMax, 'log entries over their bound');
  }

  /** Room for one more entry. */
  get full(): boolean {
    return this.entries.size >= constants.logEntryCountMax;
  }

  /** The next pending entry, ready to append: it holds its prepare and the journal is verified. */
  nextAppendable(): LogEntry | null {
    if (this.verifiedOp !== this.journalOp) return null;
    const entry = this.entries.get(this.journalOp + 1);
    if (entry === undefined || entry.prepare === null) return null;
    return entry;
  }

  /** Forgets a pending entry (it failed to chain, or a view change replaced it). */
  dropPending(op: number): void {
    const entry = this.entries.get(op);
    assert(entry !== undefined && !entry.journaled, 'drop only pending entries');
    this.entries.delete(op);
  }

  /** Forgets every entry at or beyond `op` that is not journaled. */
  dropPendingFrom(op: number): void {
    for (const [key, entry] of this.entries) {
      if (key >= op && !entry.journaled) this.entries.delete(key);
    }
  }

  /** Cuts the journal back to `opMax` (never below the executed base). Pending entries stay. */
  truncateJournal(opMax: Op): void {
    assert(opMax >= this.baseOp, 'never truncate executed ops');
    assert(opMax <= this.journalOp, 'truncate within the journal');
    for (let op = opMax + 1; op <= this.journalOp; op++) this.entries.delete(op);
    const checksum = opMax === this.baseOp ? this.baseChecksum : this.entries.get(opMax)?.checksum;
    assert(checksum !== undefined, 'the new journal head is known');
    this.journalOp = opMax;
    this.journalChecksum = checksum;
    if (this.verifiedOp > opMax) this.verifiedOp = opMax;
  }

  /** Marks the journal verified through `op` (repair confirmed it holds the current log's op). */
  verifyThrough(op: Op): void {
    assert(op === this.verifiedOp + 1 && op <= this.journalOp, 'verify in op order');
    this.verifiedOp = op;
  }

  /** Executes the next op: forgets its entry and moves the base. Returns its prepare. */
  advanceBase(): Prepare {
    const op = this.baseOp + 1;
    assert(op <= this.verifiedOp, 'execute only verified ops');
    const entry = this.entries.get(op);
    assert(entry !== undefined && entry.journaled && entry.prepare !== null, 'executed op held');
    this.entries.delete(op);
    this.baseOp = entry.op;
    this.baseChecksum = entry.checksum;
    return entry.prepare;
  }

  /**
   * Adopts `target` (whose suffix the caller has checked for contiguity and chain): keeps the
   * longest prefix of this replica's journal the hash chain proves equal to the target's, cuts
   * the rest, and records the target's ops beyond it as pending. If the target's anchor lies
   * beyond a journal whose agreement cannot be proven, the journal is kept but unverified: repair
   * compares it op by op with the committed ops and cuts it where it diverges.
   */
  adopt(target: TargetLog): AdoptResult {
    const aligned = this.alignToBase(target);
    if (aligned === null) return { ok: false };
    const { anchorOp, anchorChecksum, suffix } = aligned;
    const truncatedFrom = this.journalOp;
    let keep: Op = this.journalOp;
    let verified = this.journalOp === this.baseOp;
    if (anchorOp <= this.journalOp) {
      const own = this.checksumAtJournal(anchorOp);
      if (own !== null && checksumEqual(own, anchorChecksum)) {
        verified = true;
        keep = anchorOp;
        for (const entry of suffix) {
          const mine = entry.op <= this.journalOp ? this.checksumAtJournal(entry.op) : null;
          if (mine === null || !checksumEqual(mine, entry.checksum)) break;
          keep = entry.op;
        }
      } else {
        // Our op at the anchor is not the committed one: it and every op after it in our chain
        // were never committed. Whatever lies before it is checked by repair.
        verified = anchorOp - 1 === this.baseOp;
        keep = asOp(anchorOp - 1);
      }
    }
    this.dropPendingFrom(this.journalOp + 1);
    if (keep < this.journalOp) this.truncateJournal(keep);
    if (!verified) this.verifiedOp = this.baseOp;
    else this.verifiedOp = this.journalOp;
    this.anchorOp = anchorOp;
    this.anchorChecksum = anchorChecksum;
    if (anchorOp > this.journalOp) this.putPending(anchorOp, anchorChecksum, null, true);
    for (const entry of suffix) {
      if (entry.op > this.journalOp) this.putPending(entry.op, entry.checksum, entry.prepare, true);
    }
    const truncatedTo = this.journalOp < truncatedFrom ? this.journalOp : null;
    this.check();
    return { ok: true, truncatedTo, truncatedFrom };
  }

  /**
   * Restates a target relative to this replica's base: ops the replica already executed are
   * dropped from it after checking that the target agrees at the base. Null when it does not
   * (the target lacks or contradicts an executed op).
   */
  private alignToBase(target: TargetLog): TargetLog | null {
    if (target.anchorOp > this.baseOp) return target;
    if (target.anchorOp === this.baseOp) {
      return checksumEqual(target.anchorChecksum, this.baseChecksum) ? target : null;
    }
    const atBase = target.suffix.find((entry) => entry.op === this.baseOp);
    if (atBase === undefined || !checksumEqual(atBase.checksum, this.baseChecksum)) return null;
    return {
      anchorOp: this.baseOp,
      anchorChecksum: this.baseChecksum,
      suffix: target.suffix.filter((entry) => entry.op > this.baseOp),
    };
  }

  private checksumAtJournal(op: number): Uint8Array | null {
    if (op === this.baseOp) return this.baseChecksum;
    const entry = this.entries.get(op);
    return entry !== undefined && entry.journaled ? entry.checksum : null;
  }

  /** Asserts the invariants in the file comment. */
  check(): void {
    assert(this.baseOp <= this.verifiedOp, 'base <= verified');
    assert(this.verifiedOp <= this.journalOp, 'verified <= journal');
    assert(this.entries.size <= constants.logEntryCountMax, 'log entries over their bound');
    // Runs after every entry point: one pass over the entries, and no iterator entries.
    let counted = 0;
    this.entries.forEach((entry, op) => {
      assert(op > this.baseOp, 'entries lie beyond the base');
      assert(entry.journaled === op <= this.journalOp, 'journaled exactly up to the journal head');
      if (entry.journaled) assert(entry.prepare !== null, 'a journaled entry holds its prepare');
      if (entry.journaled) counted += 1;
    });
    assert(counted === this.journalOp - this.baseOp, 'every journaled op has an entry');
    if (this.anchorOp > this.journalOp) {
      const anchor = this.entries.get(this.anchorOp);
      assert(anchor !== undefined && checksumEqual(anchor.checksum, this.anchorChecksum));
    }
  }
}
