// Items kept by load (a count that moves by one at a time), so that finding an item of the
// lowest load is O(1) amortised instead of a scan: the session pool of a pipelining client
// asks for its least busy session on every write, and scanning 256 sessions each time showed
// in the client's profile (docs/performance.md, "Figures behind the code").
//
// Invariants: every item is in exactly one level, at the index it records; `lowest` is at most
// the lowest non-empty level (it only moves up past empty levels when asked).

import { assert } from '../core/assert.js';

/** What LoadLevels keeps for an item: its load and its place. */
export interface Leveled {
  load: number;
  /** Index of the item in its level's array (owned by LoadLevels). */
  levelIndex: number;
}

export class LoadLevels<T extends Leveled> {
  private readonly levels: T[][] = [];
  private lowest = 0;
  private countValue = 0;

  get count(): number {
    return this.countValue;
  }

  /** Adds an item at its current load. */
  add(item: T): void {
    assert(Number.isInteger(item.load) && item.load >= 0, 'a load is a non-negative integer');
    this.place(item);
    this.countValue += 1;
    if (item.load < this.lowest) this.lowest = item.load;
  }

  /** An item of the lowest load (the most recently placed of them), or undefined when empty. */
  least(): T | undefined {
    if (this.countValue === 0) return undefined;
    while (this.lowest < this.levels.length && this.levels[this.lowest]?.length === 0) {
      this.lowest += 1;
    }
    const level = this.levels[this.lowest];
    assert(level !== undefined && level.length > 0, 'a non-empty level at or above lowest');
    return level[level.length - 1];
  }

  /** Changes an item's load by delta (+1 or -1). */
  change(item: T, delta: 1 | -1): void {
    this.remove(item);
    item.load += delta;
    assert(item.load >= 0, 'a load never goes below zero');
    this.place(item);
    if (item.load < this.lowest) this.lowest = item.load;
  }

  private place(item: T): void {
    while (this.levels.length <= item.load) this.levels.push([]);
    const level = this.levels[item.load];
    assert(level !== undefined);
    item.levelIndex = level.length;
    level.push(item);
  }

  private remove(item: T): void {
    const level = this.levels[item.load];
    assert(level !== undefined && level[item.levelIndex] === item, 'the item is where it says');
    const last = level.pop();
    assert(last !== undefined);
    if (last !== item) {
      level[item.levelIndex] = last;
      last.levelIndex = item.levelIndex;
    }
  }
}
