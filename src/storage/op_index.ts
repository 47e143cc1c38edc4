// Where each op lives on disk: op → (segment index, byte position, record size). Ops are
// contiguous from 1, so the index is two growable typed arrays indexed by op - 1 (12 bytes per
// op: millions of ops cost tens of MiB, not a Map entry each), plus the first op of every
// segment, searched by bisection.
//
// Invariants: ops are pushed in order 1, 2, 3...; segments are added in order with
// non-decreasing first ops, and the first op of a segment is pushed after that segment is
// added. A segment with no records yet (first op = count + 1) is allowed only at the end.
// truncate() cuts ops and segments off the end (the journal's truncation of uncommitted ops).

import { assert } from '../core/assert.js';

const initialCapacity = 1024;

export interface OpLocation {
  readonly segment: number;
  readonly position: number;
  readonly sizeBytes: number;
}

export class OpIndex {
  private positions = new Float64Array(initialCapacity);
  private sizes = new Uint32Array(initialCapacity);
  private opCount = 0;
  private readonly segmentOpFirsts: number[] = [];

  /** The highest op indexed (0 when empty). */
  get opMax(): number {
    return this.opCount;
  }

  get segmentCount(): number {
    return this.segmentOpFirsts.length;
  }

  addSegment(opFirst: number): void {
    assert(opFirst === this.opCount + 1, 'a new segment starts at the next op');
    this.segmentOpFirsts.push(opFirst);
  }

  /** Forgets the last segment, which must hold no ops (its file was found torn and removed). */
  dropEmptyLastSegment(): void {
    const opFirst = this.segmentOpFirsts[this.segmentOpFirsts.length - 1];
    assert(opFirst === this.opCount + 1, 'only an empty last segment can be dropped');
    this.segmentOpFirsts.pop();
  }

  /**
   * Forgets every op after `opMax` and every segment after `segmentCount - 1` (a journal
   * truncation). The last segment kept must hold op opMax + 1's position, or be empty at its end.
   */
  truncate(opMax: number, segmentCount: number): void {
    assert(Number.isInteger(opMax) && opMax >= 0 && opMax <= this.opCount, 'truncate within ops');
    assert(segmentCount >= 1 && segmentCount <= this.segmentOpFirsts.length, 'segments kept');
    const lastOpFirst = this.segmentOpFirsts[segmentCount - 1] ?? 0;
    assert(lastOpFirst <= opMax + 1, 'the last segment kept starts at or before the cut');
    this.opCount = opMax;
    this.segmentOpFirsts.length = segmentCount;
  }

  push(position: number, sizeBytes: number): void {
    assert(this.segmentOpFirsts.length > 0, 'an op belongs to a segment');
    assert(Number.isSafeInteger(position) && position >= 0, 'position');
    assert(Number.isInteger(sizeBytes) && sizeBytes > 0 && sizeBytes <= 0xffff_ffff, 'size');
    if (this.opCount === this.positions.length) this.grow();
    this.positions[this.opCount] = position;
    this.sizes[this.opCount] = sizeBytes;
    this.opCount += 1;
  }

  private grow(): void {
    const positions = new Float64Array(this.positions.length * 2);
    positions.set(this.positions);
    const sizes = new Uint32Array(this.sizes.length * 2);
    sizes.set(this.sizes);
    this.positions = positions;
    this.sizes = sizes;
  }

  position(op: number): number {
    this.checkOp(op);
    return this.positions[op - 1] ?? 0;
  }

  sizeBytes(op: number): number {
    this.checkOp(op);
    return this.sizes[op - 1] ?? 0;
  }

  /** The segment holding `op`: the last segment whose first op is at or before it. */
  segment(op: number): number {
    this.checkOp(op);
    let low = 0;
    let high = this.segmentOpFirsts.length - 1;
    while (low < high) {
      const middle = (low + high + 1) >> 1;
      if ((this.segmentOpFirsts[middle] ?? 0) <= op) low = middle;
      else high = middle - 1;
    }
    return low;
  }

  segmentOpFirst(segment: number): number {
    const opFirst = this.segmentOpFirsts[segment];
    assert(opFirst !== undefined, 'segment out of range');
    return opFirst;
  }

  /** The last op stored in `segment` (opFirst - 1 when it holds none). */
  segmentOpLast(segment: number): number {
    assert(segment >= 0 && segment < this.segmentOpFirsts.length, 'segment out of range');
    const next = this.segmentOpFirsts[segment + 1];
    return next === undefined ? this.opCount : next - 1;
  }

  /**
   * The last op of the run from `op` to at most `lastOp` whose records, laid out back to back in
   * one segment, span at most `spanBytesMax` bytes (at least `op` itself).
   */
  runOpLast(op: number, lastOp: number, spanBytesMax: number): number {
    this.checkOp(op);
    this.checkOp(lastOp);
    assert(this.segment(op) === this.segment(lastOp), 'a run lies in one segment');
    const start = this.positions[op - 1] ?? 0;
    let end = op;
    while (end < lastOp) {
      const nextEnd = (this.positions[end] ?? 0) + (this.sizes[end] ?? 0);
      if (nextEnd - start > spanBytesMax) break;
      end += 1;
    }
    return end;
  }

  locate(op: number): OpLocation {
    return {
      segment: this.segment(op),
      position: this.position(op),
      sizeBytes: this.sizeBytes(op),
    };
  }

  private checkOp(op: number): void {
    assert(Number.isInteger(op), 'op must be an integer');
    assert(op >= 1 && op <= this.opCount, `op ${op} is not in the index (1..${this.opCount})`);
  }
}
