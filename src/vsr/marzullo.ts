// Marzullo's algorithm (K. Marzullo, 1984): given one interval per source, each claiming "the
// true value lies in [lower, upper]", find the smallest interval consistent with the largest
// number of sources. The clock uses it to agree on cluster time (clock.ts): each source is a
// replica's clock offset interval, and sources outside the answer are "false chimers".
//
// The sweep: every interval contributes a lower and an upper bound; walking the bounds in order,
// a lower bound opens an interval and an upper bound closes it, so the running count is the
// number of sources covering the current point. Every stretch where the count reaches its
// maximum is exactly the intersection of the sources covering it, and the answer is the
// narrowest such stretch. Intervals are closed: bounds that touch ([1, 2] and [2, 3]) agree on
// the single point 2, because lower bounds sort before upper bounds at the same value.
//
// Determinism: the order of bounds is total (value, then lower before upper, then source
// index), and among equally narrow stretches the leftmost (smallest lower bound) wins, so the
// answer depends only on the input, never on the sort algorithm.

import { assert } from '../core/assert.js';

/** One source's claim: the true value lies within [lower, upper] (both inclusive). */
export interface MarzulloSource {
  readonly lower: number;
  readonly upper: number;
}

/** The smallest interval consistent with the largest number of sources. */
export interface MarzulloInterval {
  readonly lower: number;
  readonly upper: number;
  /** Sources whose interval contains [lower, upper] ("true chimers"). */
  readonly sourcesTrue: number;
  /** Sources disjoint from it ("false chimers"); sourcesTrue + sourcesFalse = sources. */
  readonly sourcesFalse: number;
}

interface Bound {
  readonly value: number;
  /** 0 for a lower bound, 1 for an upper bound: lower sorts first at equal values. */
  readonly kind: 0 | 1;
  readonly source: number;
}

function compareBounds(a: Bound, b: Bound): number {
  if (a.value !== b.value) return a.value < b.value ? -1 : 1;
  if (a.kind !== b.kind) return a.kind - b.kind;
  return a.source - b.source;
}

function boundsSorted(sources: readonly MarzulloSource[]): Bound[] {
  const bounds: Bound[] = [];
  sources.forEach((s, source) => {
    assert(Number.isFinite(s.lower), 'marzullo: lower bound must be finite');
    assert(Number.isFinite(s.upper), 'marzullo: upper bound must be finite');
    assert(s.lower <= s.upper, 'marzullo: lower bound above upper bound');
    bounds.push({ value: s.lower, kind: 0, source }, { value: s.upper, kind: 1, source });
  });
  return bounds.sort(compareBounds);
}

/**
 * Returns the smallest interval consistent with the largest number of sources.
 *
 * With no sources the answer is `[0, 0]` agreed by none. Ties between equally many sources go
 * to the narrowest intersection, then to the one with the smallest lower bound.
 * Runs in O(n log n) and does not modify its input.
 */
export function smallestInterval(sources: readonly MarzulloSource[]): MarzulloInterval {
  if (sources.length === 0) return { lower: 0, upper: 0, sourcesTrue: 0, sourcesFalse: 0 };
  const bounds = boundsSorted(sources);
  let best = 0;
  let count = 0;
  let lower = 0;
  let upper = 0;
  for (let i = 0; i < bounds.length; i++) {
    const bound = bounds[i];
    assert(bound !== undefined);
    count += bound.kind === 0 ? 1 : -1;
    assert(count >= 0, 'marzullo: more upper than lower bounds');
    // A stretch of maximal count starts at a lower bound and ends at the next bound, which is
    // an upper bound (another lower bound would raise the count above the maximum).
    const next = bounds[i + 1];
    if (count > best) {
      assert(next !== undefined, 'marzullo: the last bound is an upper bound');
      best = count;
      lower = bound.value;
      upper = next.value;
    } else if (count === best && next !== undefined && next.kind === 1) {
      if (next.value - bound.value < upper - lower) {
        lower = bound.value;
        upper = next.value;
      }
    }
  }
  assert(count === 0, 'marzullo: every interval is closed');
  assert(best >= 1 && best <= sources.length);
  assert(lower <= upper);
  return { lower, upper, sourcesTrue: best, sourcesFalse: sources.length - best };
}
