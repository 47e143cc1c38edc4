// A per-key rate limiter for repeated log lines (a peer that stays unreachable, a client that
// keeps sending bad frames): the first occurrence passes, then at most one per interval, and
// each one that passes reports how many were held back since the last.
//
// Invariants: at most `keyCountMax` keys are tracked; past that the oldest key is forgotten
// (its next occurrence passes as a first one, and the count it had is lost). Time is passed in
// by the caller, in monotonic milliseconds, so this file never reads a clock.

import { assert } from '../core/assert.js';

interface KeyState {
  lastAdmittedMs: number;
  suppressedCount: number;
}

/** Returned by `admit` when the occurrence is to be dropped. */
export const suppressed = -1;

export class RateLimiter {
  private readonly keys = new Map<string, KeyState>();

  constructor(private readonly keyCountMax = 1024) {
    assert(Number.isSafeInteger(keyCountMax) && keyCountMax > 0, 'keyCountMax must be > 0');
  }

  /**
   * Records one occurrence of `key` at `nowMs`. Returns `suppressed` (-1) when it must be
   * dropped, else the number of occurrences dropped since the last one that passed.
   */
  admit(key: string, intervalMs: number, nowMs: number): number {
    assert(intervalMs >= 0, 'interval must be >= 0');
    const state = this.keys.get(key);
    if (state === undefined) {
      this.track(key, nowMs);
      return 0;
    }
    if (nowMs - state.lastAdmittedMs < intervalMs) {
      state.suppressedCount += 1;
      return suppressed;
    }
    const count = state.suppressedCount;
    state.suppressedCount = 0;
    state.lastAdmittedMs = nowMs;
    return count;
  }

  /** Keys currently tracked. */
  get size(): number {
    return this.keys.size;
  }

  private track(key: string, nowMs: number): void {
    if (this.keys.size >= this.keyCountMax) {
      const oldest = this.keys.keys().next();
      if (oldest.done !== true) this.keys.delete(oldest.value);
    }
    this.keys.set(key, { lastAdmittedMs: nowMs, suppressedCount: 0 });
    assert(this.keys.size <= this.keyCountMax, 'rate limiter over its key bound');
  }
}
