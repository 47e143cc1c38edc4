// Log scrubbing: a background tour over the journal's committed ops that finds latent sector
// errors and silent corruption while the other replicas still hold good copies, so that repair
// can fix them before a second fault loses data. The scrubber reads nothing itself: next() tells
// the replica which op to read (and checksum) next, onReadResult() hears how it went, and a
// corrupt op is handed back for repair.
//
// A tour visits every op of opMin..commitMax once, as the range stood when the tour began,
// starting from a random origin (injected randomness) and wrapping around: origin..commitMax,
// then opMin..origin-1. Random origins keep replicas from scrubbing the same region at the same
// time, and keep a replica that restarts often from re-reading only the start of its log. When a
// tour's last read is answered, the tour is complete and the next one begins at the next call to
// next(), over the log as it has grown by then, from a fresh origin. Ops committed during a tour
// wait for the next one rather than restarting the tour: under steady writes, restarting on every
// commit would never finish a tour, and ops far from each origin would never be read.
//
// Budget: at most readsPerTickMax ops are handed out per tick, and at most readsInflightMax may
// await their result, so scrubbing takes a bounded share of the disk from production traffic.
//
// Invariants: every op handed out lies in the current tour and is handed out once per tour;
// in flight <= readsInflightMax; handed out this tick <= readsPerTickMax; the tour's answered
// reads <= handed out <= its size.

import { assert } from '../core/assert.js';
import { asOp } from '../core/types.js';
import type { Op } from '../core/types.js';

export interface ScrubberOptions {
  /** Uniform in [0, 1), seeded by the caller; chooses each tour's origin. */
  readonly random: () => number;
  /** Ops handed out per tick. Default 4. */
  readonly readsPerTickMax?: number;
  /** Reads awaiting their result at once. Default readsPerTickMax. */
  readonly readsInflightMax?: number;
  /** The first op the journal holds. Default 1 (op 0 is the root prepare). */
  readonly opMin?: Op;
  /** The highest committed op at start; below opMin means an empty log. Default opMin - 1. */
  readonly commitMax?: Op;
}

export const scrubberDefaults = {
  readsPerTickMax: 4,
  opMin: 1,
} as const;

/** What a read result means for the replica. */
export interface ScrubReadOutcome {
  /** The op to repair from a peer when its read failed (checksum or I/O); otherwise null. */
  readonly repairOp: Op | null;
  /** True when this result was the last of a tour. */
  readonly tourCompleted: boolean;
}

/** A snapshot for metrics (vsr_scrub_*) and progress. Counters only grow. */
export interface ScrubberMetrics {
  /** Tours completed (vsr_scrub_tours_completed_total). */
  readonly tourCount: number;
  /** Reads that found corruption (vsr_scrub_corruptions_detected_total). */
  readonly corruptionCount: number;
  /** Reads answered, over all tours; its rate is vsr_scrub_throughput_ops_per_sec. */
  readonly scrubbedCount: number;
  /** Reads answered in the current tour. */
  readonly tourScrubbedCount: number;
  /** Ops in the current tour; 0 between tours. */
  readonly tourOpCount: number;
  /** Where the current tour began; null between tours. */
  readonly tourOrigin: Op | null;
  readonly readsInflightCount: number;
}

interface Tour {
  readonly origin: Op;
  readonly opCount: number;
  issuedCount: number;
  scrubbedCount: number;
}

export class Scrubber {
  readonly readsPerTickMax: number;
  readonly readsInflightMax: number;
  readonly opMin: Op;

  private readonly random: () => number;
  private commitMax: number;
  private tour: Tour | null = null;
  private readonly inflight = new Set<Op>();
  private issuedThisTick = 0;
  private tourCount = 0;
  private corruptionCount = 0;
  private scrubbedCount = 0;

  constructor(options: ScrubberOptions) {
    this.random = options.random;
    this.readsPerTickMax = options.readsPerTickMax ?? scrubberDefaults.readsPerTickMax;
    this.readsInflightMax = options.readsInflightMax ?? this.readsPerTickMax;
    this.opMin = options.opMin ?? asOp(scrubberDefaults.opMin);
    this.commitMax = options.commitMax ?? this.opMin - 1;
    assert(Number.isInteger(this.readsPerTickMax) && this.readsPerTickMax >= 1, 'readsPerTickMax');
    assert(Number.isInteger(this.readsInflightMax) && this.readsInflightMax >= 1);
    assert(this.commitMax >= this.opMin - 1, 'commitMax below the log');
  }

  /** The committed log now ends at `commitMax` (it never shrinks). Joins the next tour. */
  onCommit(commitMax: Op): void {
    assert(commitMax >= this.commitMax, 'the committed log does not shrink');
    this.commitMax = commitMax;
  }

  /** A new tick: the per-tick budget is refilled. */
  onTick(): void {
    this.issuedThisTick = 0;
  }

  /**
   * The next op to read and checksum, or null when this tick's budget is spent, too many reads
   * await their result, the log is empty, or the tour's last reads are still out.
   */
  next(): Op | null {
    if (this.issuedThisTick >= this.readsPerTickMax) return null;
    if (this.inflight.size >= this.readsInflightMax) return null;
    const tour = this.tour ?? this.startTour();
    if (tour === null || tour.issuedCount === tour.opCount) return null;
    const op = this.opAt(tour, tour.issuedCount);
    tour.issuedCount += 1;
    this.issuedThisTick += 1;
    assert(!this.inflight.has(op), 'an op is handed out once per tour');
    this.inflight.add(op);
    this.invariants();
    return op;
  }

  /** The read of `op` (handed out by next()) passed its checksum (`ok`) or did not. */
  onReadResult(op: Op, ok: boolean): ScrubReadOutcome {
    const tour = this.tour;
    assert(tour !== null, 'a result between tours');
    const handedOut = this.inflight.delete(op);
    assert(handedOut, 'a result for an op not handed out');
    tour.scrubbedCount += 1;
    this.scrubbedCount += 1;
    if (!ok) this.corruptionCount += 1;
    const tourCompleted = tour.scrubbedCount === tour.opCount;
    if (tourCompleted) {
      assert(this.inflight.size === 0, 'a complete tour has nothing in flight');
      this.tourCount += 1;
      this.tour = null;
    }
    this.invariants();
    return { repairOp: ok ? null : op, tourCompleted };
  }

  /** A snapshot for metrics and progress. */
  metrics(): ScrubberMetrics {
    return {
      tourCount: this.tourCount,
      corruptionCount: this.corruptionCount,
      scrubbedCount: this.scrubbedCount,
      tourScrubbedCount: this.tour?.scrubbedCount ?? 0,
      tourOpCount: this.tour?.opCount ?? 0,
      tourOrigin: this.tour?.origin ?? null,
      readsInflightCount: this.inflight.size,
    };
  }

  private startTour(): Tour | null {
    const opCount = this.commitMax - this.opMin + 1;
    if (opCount <= 0) return null;
    const value = this.random();
    assert(value >= 0 && value < 1, 'random() must return a number in [0, 1)');
    const origin = asOp(this.opMin + Math.floor(value * opCount));
    this.tour = { origin, opCount, issuedCount: 0, scrubbedCount: 0 };
    return this.tour;
  }

  /** The `index`-th op of the tour: from the origin to the end, then from opMin. */
  private opAt(tour: Tour, index: number): Op {
    assert(index >= 0 && index < tour.opCount);
    const op = this.opMin + ((tour.origin - this.opMin + index) % tour.opCount);
    assert(op >= this.opMin && op <= this.commitMax);
    return asOp(op);
  }

  private invariants(): void {
    assert(this.inflight.size <= this.readsInflightMax, 'reads in flight over budget');
    assert(this.issuedThisTick <= this.readsPerTickMax, 'reads this tick over budget');
    const tour = this.tour;
    if (tour === null) {
      assert(this.inflight.size === 0, 'reads in flight between tours');
      return;
    }
    assert(tour.scrubbedCount <= tour.issuedCount && tour.issuedCount <= tour.opCount);
    assert(tour.issuedCount - tour.scrubbedCount === this.inflight.size, 'in flight');
  }
}
