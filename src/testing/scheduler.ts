// The simulator's clock and agenda. Time is a whole number of ticks (10 ms of production time
// each); everything that happens later — a packet arriving, a disk write completing, a client's
// timer — is an entry in one min-heap ordered by (tick, sequence). The sequence number is the
// order in which entries were scheduled, so entries due at the same tick run in a fixed order
// and a seed replays identically.
//
// Invariants: entries are never scheduled in the past (delay >= 0 from `now`); entries run in
// non-decreasing tick order, and within a tick in scheduling order; the agenda is bounded.

import { assert } from '../core/assert.js';

interface Entry<T> {
  readonly tick: number;
  readonly sequence: number;
  readonly item: T;
}

/** Entries waiting at once; a run that exceeds it is a runaway (a message storm). */
export const agendaEntryCountMax = 1_000_000;

export class Agenda<T> {
  private readonly heap: Entry<T>[] = [];
  private sequence = 0;
  now = 0;

  get size(): number {
    return this.heap.length;
  }

  /** Schedules `item` to run `delayTicks` from now (0 = later in this tick). */
  schedule(delayTicks: number, item: T): void {
    assert(Number.isInteger(delayTicks) && delayTicks >= 0, 'delay is a whole number of ticks');
    assert(this.heap.length < agendaEntryCountMax, 'agenda overflow: a message storm?');
    this.push({ tick: this.now + delayTicks, sequence: this.sequence++, item });
  }

  /** Removes and returns the next entry due at or before `tick`, or null. */
  popDue(tick: number): T | null {
    const top = this.heap[0];
    if (top === undefined || top.tick > tick) return null;
    const last = this.heap.pop();
    assert(last !== undefined, 'heap not empty');
    if (this.heap.length > 0) {
      this.heap[0] = last;
      this.siftDown(0);
    }
    return top.item;
  }

  /** Drops every entry for which `keep` is false (used when a replica crashes). */
  filter(keep: (item: T) => boolean): void {
    const kept = this.heap.filter((entry) => keep(entry.item));
    kept.sort((a, b) => a.tick - b.tick || a.sequence - b.sequence);
    this.heap.length = 0;
    for (const entry of kept) this.heap.push(entry);
  }

  private less(a: Entry<T>, b: Entry<T>): boolean {
    return a.tick < b.tick || (a.tick === b.tick && a.sequence < b.sequence);
  }

  private push(entry: Entry<T>): void {
    const heap = this.heap;
    heap.push(entry);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const p = heap[parent] as Entry<T>;
      if (!this.less(entry, p)) break;
      heap[i] = p;
      i = parent;
    }
    heap[i] = entry;
  }

  private siftDown(start: number): void {
    const heap = this.heap;
    const entry = heap[start] as Entry<T>;
    let i = start;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= heap.length) break;
      const right = left + 1;
      let child = left;
      if (right < heap.length && this.less(heap[right] as Entry<T>, heap[left] as Entry<T>)) {
        child = right;
      }
      const c = heap[child] as Entry<T>;
      if (!this.less(c, entry)) break;
      heap[i] = c;
      i = child;
    }
    heap[i] = entry;
  }
}
