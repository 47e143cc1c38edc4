// The simulator's one source of randomness: xoshiro128** (Blackman & Vigna), seeded through
// splitmix32 from a seed that may be any non-negative safe integer. One seed drives a whole
// VOPR run; each subsystem (network, storage, workload, faults, the replica's own PRNG) gets
// its own stream through fork(), so that drawing one more number in one subsystem does not
// shift every later draw in all the others, and a change to one part of the simulator does
// not reshuffle the faults seen by the rest.
//
// Invariants: the state is four 32-bit words, never all zero; every helper is a pure function
// of the state, so the same seed and the same calls give the same numbers on every platform.

import { assert } from '../core/assert.js';

/** splitmix32: a 32-bit mixer, used only to spread a seed over xoshiro's state. */
function splitmix32(state: { value: number }): number {
  state.value = (state.value + 0x9e3779b9) | 0;
  let z = state.value;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

export class Prng {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;

  /** Seeds the generator; the seed must be a non-negative safe integer. */
  constructor(seed: number) {
    assert(Number.isSafeInteger(seed) && seed >= 0, 'seed must be a non-negative safe integer');
    const low = seed >>> 0;
    const high = Math.floor(seed / 0x1_0000_0000) >>> 0;
    const mixer = { value: low ^ Math.imul(high, 0x27d4eb2d) };
    mixer.value ^= splitmix32({ value: high });
    this.s0 = splitmix32(mixer);
    this.s1 = splitmix32(mixer);
    this.s2 = splitmix32(mixer);
    this.s3 = splitmix32(mixer);
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1;
  }

  /** The next 32-bit unsigned integer. */
  u32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  /** A float in [0, 1) with 53 random bits. */
  float(): number {
    const high = this.u32() >>> 5; // 27 bits
    const low = this.u32() >>> 6; // 26 bits
    return (high * 67108864 + low) / 9007199254740992;
  }

  /** An integer in [0, n), without modulo bias. */
  below(n: number): number {
    assert(Number.isSafeInteger(n) && n > 0, 'below() needs a positive integer bound');
    if (n <= 0x1_0000_0000) {
      const limit = 0x1_0000_0000 - (0x1_0000_0000 % n);
      for (;;) {
        const x = this.u32();
        if (x < limit) return x % n;
      }
    }
    return Math.floor(this.float() * n);
  }

  /** An integer in [min, max], both included. */
  intInclusive(min: number, max: number): number {
    assert(Number.isSafeInteger(min) && Number.isSafeInteger(max), 'integer bounds');
    assert(min <= max, 'min <= max');
    return min + this.below(max - min + 1);
  }

  /** True with probability p (0 never, 1 always). */
  chance(p: number): boolean {
    assert(p >= 0 && p <= 1, 'probability in [0, 1]');
    if (p === 0) return false;
    if (p === 1) return true;
    return this.float() < p;
  }

  /** One element of a non-empty array. */
  pick<T>(items: readonly T[]): T {
    assert(items.length > 0, 'pick from an empty array');
    const item = items[this.below(items.length)];
    return item as T;
  }

  /** Shuffles in place (Fisher–Yates) and returns the same array. */
  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.below(i + 1);
      const a = items[i] as T;
      items[i] = items[j] as T;
      items[j] = a;
    }
    return items;
  }

  /**
   * An exponentially distributed delay with the given mean, rounded up to whole ticks and at
   * least `min`; the tail is cut at `mean * 20` so one draw cannot stall a run for ever.
   */
  exponential(mean: number, min = 0): number {
    assert(mean >= 0 && min >= 0, 'non-negative mean and minimum');
    if (mean === 0) return min;
    const u = 1 - this.float(); // (0, 1]
    const value = Math.ceil(-Math.log(u) * mean);
    return min + Math.min(value, Math.ceil(mean * 20));
  }

  /** A new, independent generator derived from this one's next draws. */
  fork(): Prng {
    const high = this.u32() & 0x1f_ffff; // 21 bits: keeps the seed a safe integer
    return new Prng(high * 0x1_0000_0000 + this.u32());
  }
}

/** A random seed for `vopr run` without --seed: the only non-deterministic draw. */
export function seedFromEntropy(entropy: () => number): number {
  return Math.floor(entropy() * 2 ** 32) * 0x1_0000 + Math.floor(entropy() * 0x1_0000);
}
