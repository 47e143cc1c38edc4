// A replica's simulated wall clock. The replica reads wall-clock time only through the injected
// `realtimeUs()` (to timestamp prepares, and later for clock synchronisation); here that clock
// is a function of the simulator's tick counter plus this replica's own error: a fixed offset,
// a drift rate in parts per million, and jumps (forwards or backwards, as an NTP step or an
// operator's `date -s` would make) when clock faults are on.
//
// Invariants: without clock faults the error stays within a few milliseconds (NTP-like); the
// value is always a non-negative integer number of microseconds; heal() stops jumps and drift
// and steps the clock back to within a millisecond of true time, as NTP would once the
// operator fixes it (a step, so a healed clock may go backwards once).

import { assert } from '../core/assert.js';
import type { Prng } from './prng.js';

/** Production time per tick. */
export const tickUs = 10_000;
/** The simulated epoch: 2025-01-01T00:00:00Z, so timestamps look like real ones. */
export const epochUs = 1_735_689_600_000_000;

export interface ClockOptions {
  readonly offsetUsMax: number;
  readonly driftPpmMax: number;
  /** Per tick. */
  readonly jumpProbability: number;
  readonly jumpUsMax: number;
}

export class SimClock {
  private offsetUs: number;
  private driftPpm: number;
  private readonly stats = { jumps: 0 };

  constructor(
    private readonly prng: Prng,
    private options: ClockOptions,
  ) {
    this.offsetUs = prng.intInclusive(-options.offsetUsMax, options.offsetUsMax);
    this.driftPpm = prng.intInclusive(-options.driftPpmMax, options.driftPpmMax);
  }

  get jumps(): number {
    return this.stats.jumps;
  }

  /** The wall clock at `tick`. */
  realtimeUs(tick: number): number {
    const elapsedUs = tick * tickUs;
    const value =
      epochUs + elapsedUs + Math.round((elapsedUs * this.driftPpm) / 1e6) + this.offsetUs;
    assert(Number.isSafeInteger(value) && value >= 0, 'wall clock in range');
    return value;
  }

  /** Called once per tick: maybe jumps. */
  step(): void {
    if (!this.prng.chance(this.options.jumpProbability)) return;
    this.offsetUs += this.prng.intInclusive(-this.options.jumpUsMax, this.options.jumpUsMax);
    this.stats.jumps += 1;
  }

  /** No more jumps or drift from now on, and the error stepped back under a millisecond. */
  heal(): void {
    this.offsetUs = this.prng.intInclusive(-1000, 1000);
    this.driftPpm = 0;
    this.options = { ...this.options, jumpProbability: 0 };
  }
}
