// A timeout counted in ticks (HOUSE_RULES §3: the replica has no clock, only ticks). A running
// timeout fires once when its ticks run out and then stops; the owner restarts it if it wants
// another round. Randomised timeouts (elections) get their jitter from the caller's PRNG.

import { assert } from '../core/assert.js';

export class Timeout {
  private ticksLeft = 0;
  private ticksElapsed = 0;
  private runningValue = false;

  constructor(
    readonly name: string,
    readonly durationTicks: number,
  ) {
    assert(Number.isSafeInteger(durationTicks) && durationTicks > 0, `${name}: duration`);
  }

  get running(): boolean {
    return this.runningValue;
  }

  /** Ticks since the timeout was last (re)started; meaningful while it runs. */
  get elapsedTicks(): number {
    return this.ticksElapsed;
  }

  /** (Re)starts the timeout: it fires after durationTicks + jitterTicks ticks. */
  start(jitterTicks = 0): void {
    assert(Number.isSafeInteger(jitterTicks) && jitterTicks >= 0, `${this.name}: jitter`);
    this.ticksLeft = this.durationTicks + jitterTicks;
    this.ticksElapsed = 0;
    this.runningValue = true;
  }

  stop(): void {
    this.runningValue = false;
  }

  /** Counts one tick; true when the timeout fires now (it is then stopped). */
  tick(): boolean {
    if (!this.runningValue) return false;
    this.ticksLeft -= 1;
    this.ticksElapsed += 1;
    if (this.ticksLeft > 0) return false;
    this.runningValue = false;
    return true;
  }
}
