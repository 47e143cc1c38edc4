// Marzullo's algorithm against worked examples and against a brute-force reference. The reference
// tries every subset of sources, keeps those whose intervals share a point, and picks the largest
// subset, then the narrowest intersection, then the smallest lower bound: the definition of the
// answer, with nothing clever in it. fast-check draws small integer bounds so that ties, touching
// intervals and zero-width intervals are common.

import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { smallestInterval } from './marzullo.js';
import type { MarzulloInterval, MarzulloSource } from './marzullo.js';

function sources(...pairs: [number, number][]): MarzulloSource[] {
  return pairs.map(([lower, upper]) => ({ lower, upper }));
}

function bruteForce(input: readonly MarzulloSource[]): MarzulloInterval {
  if (input.length === 0) return { lower: 0, upper: 0, sourcesTrue: 0, sourcesFalse: 0 };
  let best: { size: number; lower: number; upper: number } | null = null;
  for (let mask = 1; mask < 1 << input.length; mask++) {
    let lower = -Infinity;
    let upper = Infinity;
    let size = 0;
    input.forEach((s, i) => {
      if ((mask & (1 << i)) === 0) return;
      size += 1;
      lower = Math.max(lower, s.lower);
      upper = Math.min(upper, s.upper);
    });
    if (lower > upper) continue;
    const better =
      best === null ||
      size > best.size ||
      (size === best.size && upper - lower < best.upper - best.lower) ||
      (size === best.size && upper - lower === best.upper - best.lower && lower < best.lower);
    if (better) best = { size, lower, upper };
  }
  assert.ok(best !== null, 'a single source always agrees with itself');
  return {
    lower: best.lower,
    upper: best.upper,
    sourcesTrue: best.size,
    sourcesFalse: input.length - best.size,
  };
}

const arbitrarySource = fc
  .tuple(fc.integer({ min: -20, max: 20 }), fc.integer({ min: 0, max: 15 }))
  .map(([lower, width]) => ({ lower, upper: lower + width }));
const arbitrarySources = fc.array(arbitrarySource, { minLength: 0, maxLength: 8 });

describe('marzullo', () => {
  it('finds the agreement of three overlapping sources', () => {
    // Proves the basic case: all three intervals share [11, 12].
    const result = smallestInterval(sources([11, 13], [10, 12], [8, 12]));
    assert.deepEqual(result, { lower: 11, upper: 12, sourcesTrue: 3, sourcesFalse: 0 });
  });

  it('outvotes a false chimer', () => {
    // Proves that a source disjoint from the majority is counted as false.
    const result = smallestInterval(sources([8, 12], [11, 13], [14, 15]));
    assert.deepEqual(result, { lower: 11, upper: 12, sourcesTrue: 2, sourcesFalse: 1 });
  });

  it('treats touching intervals as agreeing on one point', () => {
    // Proves the closed-interval rule: [8, 10] and [10, 11] meet at 10.
    const result = smallestInterval(sources([8, 12], [10, 11], [8, 10]));
    assert.deepEqual(result, { lower: 10, upper: 10, sourcesTrue: 3, sourcesFalse: 0 });
  });

  it('prefers the narrower of two equally supported intervals, wherever it lies', () => {
    // Proves the tie-break on width, with the narrow candidate first and then last.
    assert.deepEqual(smallestInterval(sources([8, 12], [10, 12], [8, 9])), {
      lower: 8,
      upper: 9,
      sourcesTrue: 2,
      sourcesFalse: 1,
    });
    assert.deepEqual(smallestInterval(sources([7, 9], [7, 12], [10, 11])), {
      lower: 10,
      upper: 11,
      sourcesTrue: 2,
      sourcesFalse: 1,
    });
    assert.deepEqual(smallestInterval(sources([-9, -7], [-12, -7], [-11, -10])), {
      lower: -11,
      upper: -10,
      sourcesTrue: 2,
      sourcesFalse: 1,
    });
  });

  it('breaks a tie of equal width towards the smaller lower bound', () => {
    // Proves determinism when two disjoint pairs agree equally: the leftmost wins.
    const result = smallestInterval(sources([5, 7], [0, 2], [6, 8], [1, 3]));
    assert.deepEqual(result, { lower: 1, upper: 2, sourcesTrue: 2, sourcesFalse: 2 });
  });

  it('handles no sources, one source and zero-width sources', () => {
    // Proves the edge cases a cluster of one or two replicas produces.
    assert.deepEqual(smallestInterval([]), { lower: 0, upper: 0, sourcesTrue: 0, sourcesFalse: 0 });
    assert.deepEqual(smallestInterval(sources([1, 3])), {
      lower: 1,
      upper: 3,
      sourcesTrue: 1,
      sourcesFalse: 0,
    });
    assert.deepEqual(smallestInterval(sources([-10, 10], [-1, 1], [0, 0])), {
      lower: 0,
      upper: 0,
      sourcesTrue: 3,
      sourcesFalse: 0,
    });
    assert.deepEqual(smallestInterval(sources([1, 3], [4, 5])), {
      lower: 4,
      upper: 5,
      sourcesTrue: 1,
      sourcesFalse: 1,
    });
  });

  it('rejects an inverted interval as a programmer error', () => {
    // Proves the precondition is asserted rather than silently producing nonsense.
    assert.throws(() => smallestInterval(sources([3, 1])), /lower bound above upper bound/);
  });

  it('matches the brute-force reference', () => {
    // Proves the sweep equals the definition on random inputs full of ties.
    fc.assert(
      fc.property(arbitrarySources, (input) => {
        assert.deepEqual(smallestInterval(input), bruteForce(input));
      }),
      { numRuns: 2000 },
    );
  });

  it('does not depend on the order of the sources and leaves the input alone', () => {
    // Proves that the tie-break by source index never changes the answer, only the sort.
    fc.assert(
      fc.property(
        arbitrarySources.chain((input) =>
          fc.tuple(fc.constant(input), fc.shuffledSubarray(input, { minLength: input.length })),
        ),
        ([input, shuffled]) => {
          const copy = input.map((s) => ({ ...s }));
          assert.deepEqual(smallestInterval(shuffled), smallestInterval(input));
          assert.deepEqual(input, copy);
        },
      ),
      { numRuns: 500 },
    );
  });

  it('counts as true exactly the sources that contain the answer', () => {
    // Proves that sourcesTrue/sourcesFalse partition the sources by containment.
    fc.assert(
      fc.property(arbitrarySources, (input) => {
        const result = smallestInterval(input);
        const containing = input.filter((s) => s.lower <= result.lower && result.upper <= s.upper);
        const disjoint = input.filter((s) => s.upper < result.lower || result.upper < s.lower);
        if (input.length > 0) assert.equal(containing.length, result.sourcesTrue);
        assert.equal(disjoint.length, result.sourcesFalse);
      }),
      { numRuns: 1000 },
    );
  });
});
