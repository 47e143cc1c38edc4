// The log scrubber as a schedule: a test plays the replica, taking ops from next() each tick,
// "reading" them (answering at once, later, or out of order) and reporting whether the checksum
// held. The tests check the schedule itself: each tour visits every committed op exactly once
// from its origin and wraps, the per-tick and in-flight budgets hold, corruption is handed back
// for repair, and a growing log joins the next tour. fast-check drives the general case.

import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { asOp } from '../core/types.js';
import type { Op } from '../core/types.js';
import { Scrubber } from './scrubber.js';
import type { ScrubberOptions } from './scrubber.js';

/** Mulberry32: a tiny seeded generator of numbers in [0, 1), for tests only. */
function seeded(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function scrubber(commitMax: number, options: Partial<ScrubberOptions> = {}): Scrubber {
  return new Scrubber({ random: () => 0.5, commitMax: asOp(commitMax), ...options });
}

/** Takes everything next() offers this tick. */
function drain(s: Scrubber): Op[] {
  const ops: Op[] = [];
  for (let op = s.next(); op !== null; op = s.next()) ops.push(op);
  return ops;
}

/** Runs ticks, answering every read at once with `ok(op)`, until a tour completes. */
function tour(s: Scrubber, ok: (op: Op) => boolean = () => true): Op[] {
  const visited: Op[] = [];
  for (let tick = 0; tick < 10_000; tick++) {
    s.onTick();
    for (let op = s.next(); op !== null; op = s.next()) {
      visited.push(op);
      if (s.onReadResult(op, ok(op)).tourCompleted) return visited;
    }
  }
  assert.fail('the tour never completed');
}

const range = (from: number, to: number): number[] =>
  Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe('scrubber', () => {
  it('tours from a random origin and wraps around', () => {
    // Proves the order: 10 ops and a draw of 0.5 put the origin at op 6; the tour reads
    // 6..10 then 1..5, and the next tour starts from a fresh draw.
    const draws = [0.5, 0.0];
    const s = scrubber(10, { random: () => draws.shift() ?? 0.99 });
    assert.deepEqual(tour(s), [...range(6, 10), ...range(1, 5)]);
    assert.deepEqual(tour(s), range(1, 10));
    assert.deepEqual(tour(s), [10, ...range(1, 9)]);
    assert.equal(s.metrics().tourCount, 3);
  });

  it('hands out at most readsPerTickMax ops per tick', () => {
    // Proves the per-tick budget: with reads answered at once, each tick yields exactly 3 ops,
    // even across the end of a tour (the next tour starts within the same tick's budget).
    const s = scrubber(10, { readsPerTickMax: 3, readsInflightMax: 100 });
    const perTick: number[] = [];
    for (let tick = 0; tick < 4; tick++) {
      s.onTick();
      let count = 0;
      for (let ops = drain(s); ops.length > 0; ops = drain(s)) {
        count += ops.length;
        for (const op of ops) s.onReadResult(op, true);
      }
      perTick.push(count);
    }
    assert.deepEqual(perTick, [3, 3, 3, 3]);
    assert.equal(s.metrics().tourCount, 1);
    assert.equal(s.metrics().tourScrubbedCount, 2);
  });

  it('holds at most readsInflightMax reads awaiting their result', () => {
    // Proves the in-flight bound: unanswered reads stop the flow across ticks; one answer
    // lets exactly one more op out.
    const s = scrubber(100, { readsPerTickMax: 4, readsInflightMax: 6 });
    s.onTick();
    const first = drain(s);
    s.onTick();
    const second = drain(s);
    assert.deepEqual([first.length, second.length], [4, 2]);
    s.onTick();
    assert.equal(s.next(), null);
    s.onReadResult(second[0]!, true);
    assert.notEqual(s.next(), null);
    assert.equal(s.next(), null);
    assert.equal(s.metrics().readsInflightCount, 6);
  });

  it('hands corruption back for repair and counts it', () => {
    // Proves the corruption path: a failed read returns its op for repair, is counted, and
    // does not stop the tour; the next tour finds it again if nobody repaired it.
    const corrupt = new Set([3, 7]);
    const s = scrubber(10, { readsPerTickMax: 4 });
    const repairs: Op[] = [];
    const outcomes: boolean[] = [];
    for (let tick = 0; tick < 15; tick++) {
      s.onTick();
      for (const op of drain(s)) {
        const outcome = s.onReadResult(op, !corrupt.has(op));
        if (outcome.repairOp !== null) repairs.push(outcome.repairOp);
        outcomes.push(outcome.tourCompleted);
      }
    }
    // Origin 6 every time: each tour reads 6..10, 1..5, meeting 7 then 3.
    assert.deepEqual(repairs, [7, 3, 7, 3, 7, 3, 7, 3, 7, 3]);
    assert.equal(outcomes.filter((done) => done).length, 5);
    assert.deepEqual(
      { tours: s.metrics().tourCount, corruptions: s.metrics().corruptionCount },
      { tours: 5, corruptions: 10 },
    );
  });

  it('waits for a log, and starts touring when it grows', () => {
    // Proves the empty case: nothing to read until the first commit, then a tour of it.
    const s = scrubber(0);
    s.onTick();
    assert.equal(s.next(), null);
    assert.equal(s.metrics().tourOrigin, null);
    s.onCommit(asOp(3));
    assert.deepEqual(tour(s).sort(), [1, 2, 3]);
  });

  it('lets ops committed during a tour join the next tour', () => {
    // Proves the growth rule: a tour keeps the range it began with, so it completes under
    // steady writes; the next tour covers the grown log exactly once.
    const s = scrubber(8, { readsPerTickMax: 2, random: seeded(3) });
    const visited: Op[] = [];
    let tourCompleted = false;
    for (let tick = 0; !tourCompleted; tick++) {
      assert.ok(tick < 100, 'the tour completes despite the writes');
      s.onCommit(asOp(8 + tick));
      s.onTick();
      for (const op of drain(s)) {
        visited.push(op);
        tourCompleted ||= s.onReadResult(op, true).tourCompleted;
      }
    }
    assert.deepEqual(
      [...visited].sort((a, b) => a - b),
      range(1, 8),
    );
    assert.equal(s.metrics().tourCount, 1);
    const grown = tour(s);
    assert.ok(grown.length > 8);
    assert.deepEqual(
      [...grown].sort((a, b) => a - b),
      range(1, grown.length),
    );
  });

  it('visits every committed op exactly once per tour, whatever the timing', () => {
    // Proves the tour property in general: random log sizes, opMin, budgets, seeds, commits
    // during the tour, and reads answered after random delays and out of order. Every tour
    // covers exactly opMin..commitMax as it stood when the tour began.
    const config = fc.record({
      opMin: fc.integer({ min: 0, max: 5 }),
      size: fc.integer({ min: 1, max: 120 }),
      readsPerTickMax: fc.integer({ min: 1, max: 6 }),
      readsInflightMax: fc.integer({ min: 1, max: 8 }),
      seed: fc.integer(),
      delays: fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 1, maxLength: 50 }),
      growth: fc.integer({ min: 0, max: 2 }),
    });
    fc.assert(
      fc.property(config, (c) => {
        const random = seeded(c.seed);
        let commitMax = c.opMin + c.size - 1;
        const s = new Scrubber({
          random,
          readsPerTickMax: c.readsPerTickMax,
          readsInflightMax: c.readsInflightMax,
          opMin: asOp(c.opMin),
          commitMax: asOp(commitMax),
        });
        const pending: { op: Op; dueTick: number }[] = [];
        let tourOps: Op[] = [];
        let tourHead = -1;
        let toursChecked = 0;
        for (let tick = 0; toursChecked < 3; tick++) {
          assert.ok(tick < 100_000, 'progress');
          s.onTick();
          let handedOut = 0;
          for (let op = s.next(); op !== null; op = s.next()) {
            if (tourOps.length === 0) tourHead = commitMax;
            tourOps.push(op);
            handedOut += 1;
            pending.push({ op, dueTick: tick + (c.delays[tick % c.delays.length] ?? 0) });
          }
          assert.ok(handedOut <= c.readsPerTickMax);
          assert.ok(s.metrics().readsInflightCount <= c.readsInflightMax);
          // Answer due reads, the latest-issued first, to shuffle the order.
          for (let i = pending.length - 1; i >= 0; i--) {
            const read = pending[i]!;
            if (read.dueTick > tick) continue;
            pending.splice(i, 1);
            if (s.onReadResult(read.op, true).tourCompleted) {
              const sorted = [...tourOps].sort((a, b) => a - b);
              assert.deepEqual(sorted, range(c.opMin, tourHead));
              tourOps = [];
              toursChecked += 1;
            }
          }
          commitMax += c.growth;
          s.onCommit(asOp(commitMax));
        }
        assert.equal(s.metrics().tourCount, 3);
      }),
      { numRuns: 300 },
    );
  });

  it('chooses the same origins from the same seed', () => {
    // Proves determinism: two scrubbers with one seed read in the same order.
    const order = (seed: number) => {
      const s = scrubber(50, { random: seeded(seed) });
      return [...tour(s), ...tour(s), ...tour(s)];
    };
    assert.deepEqual(order(11), order(11));
    assert.notDeepEqual(order(11), order(12));
  });

  it('reports progress through a tour', () => {
    // Proves the progress counters: ops read this tour, the tour's size and origin, and the
    // running total across tours.
    const s = scrubber(10, { readsPerTickMax: 4 });
    s.onTick();
    for (const op of drain(s)) s.onReadResult(op, true);
    assert.deepEqual(s.metrics(), {
      tourCount: 0,
      corruptionCount: 0,
      scrubbedCount: 4,
      tourScrubbedCount: 4,
      tourOpCount: 10,
      tourOrigin: 6,
      readsInflightCount: 0,
    });
    tour(s);
    assert.equal(s.metrics().scrubbedCount, 10);
    assert.equal(s.metrics().tourOpCount, 0);
  });

  it('asserts on programmer errors', () => {
    // Proves the guards: a result for an op never handed out, a shrinking log, a bad draw.
    const s = scrubber(10);
    s.onTick();
    const op = s.next();
    assert.ok(op !== null);
    assert.throws(() => s.onReadResult(asOp(op === 1 ? 2 : 1), true), /not handed out/);
    assert.throws(() => s.onCommit(asOp(9)), /does not shrink/);
    assert.throws(() => scrubber(10, { random: () => 1 }).next(), /\[0, 1\)/);
  });
});
