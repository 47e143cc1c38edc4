// Tests for the seeded PRNG: it is deterministic per seed, different seeds and forks give
// different streams, and the helpers stay in range with roughly the right distribution.

import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { Prng, seedFromEntropy } from './prng.js';

function draws(prng: Prng, count: number): number[] {
  return Array.from({ length: count }, () => prng.u32());
}

describe('Prng', () => {
  it('gives the same stream for the same seed, and different streams otherwise', () => {
    // Proves one seed drives everything reproducibly, including seeds above 2^32.
    for (const seed of [0, 1, 42, 2 ** 32, 2 ** 32 + 1, Number.MAX_SAFE_INTEGER]) {
      assert.deepEqual(draws(new Prng(seed), 50), draws(new Prng(seed), 50));
    }
    assert.notDeepEqual(draws(new Prng(1), 8), draws(new Prng(2), 8));
    assert.notDeepEqual(draws(new Prng(2 ** 32), 8), draws(new Prng(0), 8));
  });

  it('forks independent streams deterministically', () => {
    // Proves subsystems get their own streams: a fork differs from its parent, and forking
    // is itself reproducible.
    const a = new Prng(7);
    const b = new Prng(7);
    const forkA = a.fork();
    const forkB = b.fork();
    assert.deepEqual(draws(forkA, 20), draws(forkB, 20));
    assert.notDeepEqual(draws(a.fork(), 20), draws(a, 20));
  });

  it('keeps helpers in range and roughly uniform', () => {
    // Proves the bounds of below/intInclusive/float/chance and that below() has no gross bias.
    const prng = new Prng(99);
    const counts = new Array<number>(6).fill(0);
    for (let i = 0; i < 60_000; i++) {
      const x = prng.below(6);
      counts[x] = (counts[x] ?? 0) + 1;
      const y = prng.intInclusive(-3, 3);
      assert.ok(y >= -3 && y <= 3 && Number.isInteger(y));
      const f = prng.float();
      assert.ok(f >= 0 && f < 1);
    }
    for (const count of counts) assert.ok(count > 9000 && count < 11000, `bucket ${count}`);
    assert.equal(prng.chance(0), false);
    assert.equal(prng.chance(1), true);
    let heads = 0;
    for (let i = 0; i < 10_000; i++) if (prng.chance(0.25)) heads += 1;
    assert.ok(heads > 2200 && heads < 2800, `chance(0.25) gave ${heads}/10000`);
  });

  it('draws exponential delays with the asked mean, a minimum and a capped tail', () => {
    // Proves the delay helper used for network latency: mean near the parameter, never below
    // the minimum, never above min + 20 * mean.
    const prng = new Prng(5);
    let sum = 0;
    for (let i = 0; i < 20_000; i++) {
      const d = prng.exponential(4, 1);
      assert.ok(d >= 1 && d <= 81 && Number.isInteger(d));
      sum += d;
    }
    const mean = sum / 20_000;
    assert.ok(mean > 4 && mean < 6, `mean ${mean}`);
  });

  it('shuffles to a permutation and picks members', () => {
    // Proves shuffle() keeps every element once and pick() returns an element.
    const prng = new Prng(3);
    const items = Array.from({ length: 20 }, (_, i) => i);
    const shuffled = prng.shuffle([...items]);
    assert.deepEqual(
      [...shuffled].sort((a, b) => a - b),
      items,
    );
    assert.notDeepEqual(shuffled, items);
    assert.ok(items.includes(prng.pick(items)));
  });

  it('makes seeds from entropy that are safe integers', () => {
    // Proves `vopr run` without --seed prints a seed that --seed accepts.
    for (const x of [0, 0.5, 0.999999]) {
      const seed = seedFromEntropy(() => x);
      assert.ok(Number.isSafeInteger(seed) && seed >= 0);
    }
  });
});
