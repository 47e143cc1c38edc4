// Repair scheduling: the fastest peer is preferred, budgets are respected, requests expire, a
// tenth of choices experiment, and a seed replays the same choices. Time is plain microseconds
// chosen by each test; randomness is either a constant (to switch experiments off or on) or a
// small seeded generator, so every outcome here is exact.

import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { asReplicaIndex } from '../core/types.js';
import type { ReplicaIndex } from '../core/types.js';
import { RepairBudget } from './repair_budget.js';
import type { RepairBudgetOptions } from './repair_budget.js';

const msUs = 1000;
const r = asReplicaIndex;

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

/** Never experiments: every draw is above the 10% chance. */
const never = (): number => 0.5;

function budget(options: Partial<RepairBudgetOptions> = {}): RepairBudget {
  return new RepairBudget({ replica: r(0), replicaCount: 4, random: never, ...options });
}

const peers = [r(1), r(2), r(3)];

/** Sends request `id` to `peer` at `sentUs` and answers it `latencyUs` later. */
function roundTrip(
  b: RepairBudget,
  peer: ReplicaIndex,
  id: number,
  sentUs: number,
  latencyUs: number,
) {
  b.onRequestSent(peer, id, sentUs);
  return b.onResponse(peer, id, sentUs + latencyUs);
}

describe('repair budget', () => {
  it('keeps an EWMA of latency with alpha 0.2, starting at 1 ms', () => {
    // Proves the average: 1 ms, then a 6 ms answer moves it a fifth of the way, to 2 ms.
    const b = budget();
    assert.equal(b.ewmaLatencyUs(r(1)), 1000);
    assert.deepEqual(roundTrip(b, r(1), 7, 0, 6 * msUs), { status: 'accepted', latencyUs: 6000 });
    assert.equal(b.ewmaLatencyUs(r(1)), 2000);
    roundTrip(b, r(1), 8, 10 * msUs, 2 * msUs);
    assert.equal(b.ewmaLatencyUs(r(1)), 2000);
    roundTrip(b, r(1), 9, 20 * msUs, 7 * msUs);
    assert.equal(b.ewmaLatencyUs(r(1)), 3000);
  });

  it('prefers the peer with the lowest average latency, the lowest index on a tie', () => {
    // Proves the ordinary choice: unmeasured peers tie (lowest index wins); once measured, the
    // fastest wins whatever the order of the candidates.
    const b = budget();
    assert.equal(b.choosePeer(peers), r(1));
    roundTrip(b, r(1), 1, 0, 30 * msUs);
    roundTrip(b, r(2), 2, 0, 5 * msUs);
    roundTrip(b, r(3), 3, 0, 10 * msUs);
    assert.equal(b.choosePeer(peers), r(2));
    assert.equal(b.choosePeer([r(3), r(2), r(1)]), r(2));
    assert.equal(b.choosePeer([r(3), r(1)]), r(3));
    assert.equal(b.choosePeer([]), null);
  });

  it('allows at most two requests in flight per peer', () => {
    // Proves the per-peer budget: the fastest peer fills up, the next fastest takes over, and
    // with every peer full there is no choice; an answer frees one slot.
    const b = budget();
    roundTrip(b, r(1), 100, 0, 500);
    const chosen: (ReplicaIndex | null)[] = [];
    for (let id = 0; id < 7; id++) {
      const peer = b.choosePeer(peers);
      chosen.push(peer);
      if (peer !== null) b.onRequestSent(peer, id, msUs);
    }
    assert.deepEqual(chosen, [r(1), r(1), r(2), r(2), r(3), r(3), null]);
    assert.equal(b.inflight(r(1)), 2);
    assert.deepEqual(
      { available: b.metrics().available, inflight: b.metrics().inflightCount },
      { available: 0, inflight: 6 },
    );
    assert.throws(() => b.onRequestSent(r(1), 99, msUs), /budget exceeded/);
    b.onResponse(r(2), 3, 2 * msUs);
    assert.equal(b.choosePeer(peers), r(2));
  });

  it('does not ask a peer for a request it is already asking it for', () => {
    // Proves the optional id filter and the matching assertion in onRequestSent.
    const b = budget();
    b.onRequestSent(r(1), 5, 0);
    assert.equal(b.choosePeer(peers, 5), r(2));
    assert.equal(b.choosePeer(peers, 6), r(1));
    assert.throws(() => b.onRequestSent(r(1), 5, 0), /already in flight/);
  });

  it('expires requests after 500 ms, frees their budget and charges the wait', () => {
    // Proves expiry: nothing at 499.999 ms, both requests at 500 ms, listed for re-sending;
    // the peer's average absorbs the 500 ms wait twice; a late answer is unknown.
    const b = budget();
    b.onRequestSent(r(1), 1, 0);
    b.onRequestSent(r(1), 2, 0);
    assert.deepEqual(b.onTick(500 * msUs - 1), []);
    assert.deepEqual(b.onTick(500 * msUs), [
      { peer: r(1), id: 1, waitedUs: 500_000 },
      { peer: r(1), id: 2, waitedUs: 500_000 },
    ]);
    assert.equal(b.inflight(r(1)), 0);
    assert.equal(b.metrics().available, b.capacity);
    assert.equal(b.metrics().expiredCount, 2);
    // 1000 -> 1000 + 0.2 * 499000 = 100800 -> 100800 + 0.2 * 399200 = 180640.
    assert.ok(Math.abs(b.ewmaLatencyUs(r(1)) - 180_640) < 1e-6);
    assert.deepEqual(b.onResponse(r(1), 1, 600 * msUs), { status: 'unknown' });
    assert.equal(b.metrics().unknownResponseCount, 1);
    assert.ok(Math.abs(b.ewmaLatencyUs(r(1)) - 180_640) < 1e-6, 'late answers change nothing');
  });

  it('moves traffic away from a peer that stopped answering', () => {
    // Proves the point of charging expiries: the fastest peer crashes; its requests expire,
    // its average climbs past the others, and new requests go elsewhere.
    const b = budget();
    roundTrip(b, r(1), 1, 0, 1 * msUs);
    roundTrip(b, r(2), 2, 0, 4 * msUs);
    roundTrip(b, r(3), 3, 0, 8 * msUs);
    let nowUs = 10 * msUs;
    let id = 10;
    const choices: ReplicaIndex[] = [];
    for (let round = 0; round < 10; round++) {
      const peer = b.choosePeer(peers);
      assert.ok(peer !== null);
      choices.push(peer);
      b.onRequestSent(peer, id, nowUs);
      if (peer !== r(1)) b.onResponse(peer, id, nowUs + 4 * msUs);
      id += 1;
      nowUs += 600 * msUs;
      b.onTick(nowUs);
    }
    assert.equal(choices[0], r(1));
    assert.ok(
      choices.slice(1).every((peer) => peer !== r(1)),
      `choices ${choices.join(',')}`,
    );
  });

  it('sends about one choice in ten to a random peer', () => {
    // Proves the experiment rate with a seeded generator: 10,000 choices among three peers
    // whose averages never change; about 10% are experiments, spread over all three peers.
    const b = budget({ random: seeded(7) });
    roundTrip(b, r(1), 1, 0, 1 * msUs);
    roundTrip(b, r(2), 2, 0, 9 * msUs);
    roundTrip(b, r(3), 3, 0, 9 * msUs);
    const counts = new Map<ReplicaIndex, number>();
    for (let i = 0; i < 10_000; i++) {
      const peer = b.choosePeer(peers);
      assert.ok(peer !== null);
      counts.set(peer, (counts.get(peer) ?? 0) + 1);
    }
    const experiments = b.metrics().experimentCount;
    assert.ok(experiments > 900 && experiments < 1100, `experiments ${experiments}`);
    // The fastest peer gets the 90% plus its third of the experiments.
    assert.equal(
      (counts.get(r(2)) ?? 0) + (counts.get(r(3)) ?? 0) + (counts.get(r(1)) ?? 0),
      10_000,
    );
    assert.ok((counts.get(r(2)) ?? 0) > 200 && (counts.get(r(3)) ?? 0) > 200);
  });

  it('replays the same choices from the same seed', () => {
    // Proves determinism: a random script of choices, answers, silences and ticks, run twice
    // with the same seed, yields identical choices, expiries and metrics; and the budget's
    // invariants hold at every step.
    const script = fc.array(
      fc.record({ latencyUs: fc.integer({ min: 0, max: 900_000 }), answer: fc.boolean() }),
      { maxLength: 200 },
    );
    fc.assert(
      fc.property(fc.integer(), script, (seed, steps) => {
        const run = () => {
          const b = budget({ random: seeded(seed), replicaCount: 5 });
          const five = [r(1), r(2), r(3), r(4)];
          const trace: unknown[] = [];
          let nowUs = 0;
          steps.forEach((step, id) => {
            const peer = b.choosePeer(five);
            trace.push(peer);
            if (peer !== null) {
              b.onRequestSent(peer, id, nowUs);
              if (step.answer && step.latencyUs < 500_000) {
                trace.push(b.onResponse(peer, id, nowUs + step.latencyUs));
              }
            }
            nowUs += step.latencyUs >> 4;
            trace.push(b.onTick(nowUs));
            const m = b.metrics();
            assert.equal(m.available + m.inflightCount, m.capacity);
            assert.ok(m.peers.every((p) => p.inflightCount <= 2));
          });
          trace.push(b.metrics());
          return trace;
        };
        assert.deepEqual(run(), run());
      }),
      { numRuns: 200 },
    );
  });

  it('draws randomness in a fixed pattern', () => {
    // Proves what a seed means: one draw per choice, a second only for an experiment, none
    // when nobody is eligible; so the replica's other uses of the generator stay aligned.
    const draws: number[] = [];
    const values = [0.05, 0.99, 0.5, 0.09, 0.0];
    const b = budget({
      random: () => {
        const value = values[draws.length];
        assert.ok(value !== undefined);
        draws.push(value);
        return value;
      },
    });
    assert.equal(b.choosePeer(peers), r(3)); // 0.05 < 0.1: experiment; 0.99 picks the last.
    assert.equal(b.choosePeer(peers), r(1)); // 0.5: the fastest (a tie: lowest index).
    assert.equal(b.choosePeer(peers), r(1)); // 0.09: experiment; 0.0 picks the first.
    assert.equal(b.choosePeer([]), null); // no draw at all.
    assert.equal(draws.length, 5);
    assert.equal(b.metrics().experimentCount, 2);
  });

  it('clears everything in flight, and asserts on programmer errors', () => {
    // Proves clear() and the guards: asking itself, unknown peers, duplicate candidates.
    const b = budget();
    b.onRequestSent(r(1), 1, 0);
    b.onRequestSent(r(2), 1, 0);
    b.clear();
    assert.equal(b.metrics().inflightCount, 0);
    assert.deepEqual(b.onTick(10_000 * msUs), []);
    assert.throws(() => b.choosePeer([r(0)]), /from itself/);
    assert.throws(() => b.choosePeer([r(7)]), /out of range/);
    assert.throws(() => b.choosePeer([r(1), r(1)]), /distinct/);
    assert.throws(() => budget({ random: () => 1 }).choosePeer(peers), /\[0, 1\)/);
  });
});
