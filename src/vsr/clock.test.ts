// Cluster clock synchronisation in a small simulated world. True time advances in 10 ms ticks;
// every clock in the cluster is a function of true time (an offset, a drift, a jump), and once a
// second each reachable peer answers a ping whose round trip the test chooses. The clock under
// test belongs to replica 0 and reads its own monotonic and wall clocks from the simulation, so
// each test can say exactly how wrong every clock is and check what realtime() makes of it.

import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { asReplicaIndex } from '../core/types.js';
import { Clock } from './clock.js';
import type { ClockEvent, ClockOptions } from './clock.js';

const msUs = 1000;
const sUs = 1_000_000;
const tickUs = 10 * msUs;
const epochTrueUs = 1_700_000_000 * sUs;

/** A clock as a function of true time (microseconds since the Unix epoch). */
type WallFn = (trueUs: number) => number;

const exact: WallFn = (t) => t;
const offset =
  (offsetUs: number): WallFn =>
  (t) =>
    t + offsetUs;
/** Drifts `ppm` parts per million from true time, starting at the simulation's epoch. */
const drift =
  (ppm: number): WallFn =>
  (t) =>
    t + Math.round(((t - epochTrueUs) * ppm) / 1_000_000);
/** Reads `before` until true time `atUs` (relative to the start), then jumps by `jumpUs`. */
const jump =
  (atUs: number, jumpUs: number, before: WallFn = exact): WallFn =>
  (t) =>
    before(t) + (t - epochTrueUs >= atUs ? jumpUs : 0);

interface Peer {
  wall: WallFn;
  roundTripUs: number;
  /** Whether the peer answers pings at the given true time. */
  reachable: (trueUs: number) => boolean;
}

class World {
  trueUs = epochTrueUs;
  ticks = 0;
  readonly clock: Clock;
  readonly events: ClockEvent[] = [];

  constructor(
    readonly localWall: WallFn,
    readonly peers: Peer[],
    options: Partial<ClockOptions> = {},
  ) {
    const monotonicOriginUs = 42 * sUs;
    this.clock = new Clock({
      replica: asReplicaIndex(0),
      replicaCount: peers.length + 1,
      time: {
        monotonicUs: () => this.trueUs - epochTrueUs + monotonicOriginUs,
        realtimeUs: () => this.localWall(this.trueUs),
      },
      ...options,
    });
  }

  monotonicAt(trueUs: number): number {
    return trueUs - epochTrueUs + 42 * sUs;
  }

  /** One ping/pong with peer `index` (1-based) completing now. */
  exchange(index: number): void {
    const peer = this.peers[index - 1];
    assert.ok(peer !== undefined);
    const m0 = this.monotonicAt(this.trueUs - peer.roundTripUs);
    const peerRealtimeUs = peer.wall(this.trueUs - Math.floor(peer.roundTripUs / 2));
    const m1 = this.monotonicAt(this.trueUs);
    const result = this.clock.learn(asReplicaIndex(index), m0, peerRealtimeUs, m1);
    assert.deepEqual(result, { status: 'learned' });
  }

  /** Runs for `durationUs`, pinging every reachable peer once a second, and observes each tick. */
  run(durationUs: number, observe: (world: World) => void = () => {}): void {
    const endUs = this.trueUs + durationUs;
    while (this.trueUs < endUs) {
      this.trueUs += tickUs;
      this.ticks += 1;
      if (this.ticks % 100 === 0) {
        this.peers.forEach((peer, i) => {
          if (peer.reachable(this.trueUs)) this.exchange(i + 1);
        });
      }
      this.events.push(...this.clock.tick());
      observe(this);
    }
  }

  /** How far realtime() is from true time, or null when the clock refuses. */
  errorUs(): number | null {
    const realtime = this.clock.realtime();
    return realtime === null ? null : realtime - this.trueUs;
  }
}

function peer(wall: WallFn, roundTripUs = 2 * msUs): Peer {
  return { wall, roundTripUs, reachable: () => true };
}

/** Asserts that whenever the clock answers, it is within `boundUs` of true time. */
function accurateWithin(boundUs: number): (world: World) => void {
  return (world) => {
    const error = world.errorUs();
    if (error !== null) {
      assert.ok(Math.abs(error) <= boundUs, `off by ${error} us at tick ${world.ticks}`);
    }
  };
}

describe('clock', () => {
  it('synchronises with honest peers after the minimum window, and keeps true time', () => {
    // Proves the happy path: null before any agreement, then an epoch agreed by every clock
    // (identical clocks, small round trips), and realtime() within a millisecond of true time.
    const world = new World(exact, [peer(exact), peer(exact)]);
    world.run(2 * sUs);
    assert.equal(world.clock.realtime(), null);
    assert.equal(world.clock.metrics().synchronized, false);
    world.run(2 * sUs);
    const metrics = world.clock.metrics();
    assert.equal(metrics.synchronized, true);
    assert.equal(metrics.sourcesTrue, 3);
    assert.equal(metrics.epochCount, 1);
    assert.equal(metrics.sampleCount, 8);
    assert.ok(Math.abs(world.errorUs() ?? Infinity) <= msUs);
    assert.equal(world.clock.lastSynchronizedOffsetUs, metrics.offsetUs);
    const synchronized = world.events.filter((e) => e.kind === 'synchronized');
    assert.equal(synchronized.length, 1);
    assert.deepEqual(synchronized[0], {
      kind: 'synchronized',
      lowerUs: metrics.offsetUs! - metrics.intervalWidthUs! / 2,
      upperUs: metrics.offsetUs! + metrics.intervalWidthUs! / 2,
      sourcesTrue: 3,
      sourcesFalse: 0,
      toleranceUs: metrics.toleranceUs,
      resumed: true,
    });
    world.run(20 * sUs, accurateWithin(msUs));
    assert.ok(world.clock.metrics().epochCount >= 5, 'a new epoch every few seconds');
    const later = world.events.filter((e) => e.kind === 'synchronized').slice(1);
    assert.ok(later.every((e) => e.kind === 'synchronized' && !e.resumed));
  });

  it('accounts for the round trip: a sample bounds the offset by the time in flight', () => {
    // Proves the interval [w - wallAt(m1), w - wallAt(m0)]: a peer 40 ms ahead seen over a
    // 100 ms round trip yields an offset between -10 ms and +90 ms of ours, not a point.
    const world = new World(exact, [peer(offset(40 * msUs), 100 * msUs), peer(exact)], {
      quorum: 3,
      toleranceUs: 0,
    });
    world.run(4 * sUs);
    // With no tolerance the three intervals [0,0], [-10ms, 90ms] and [-1ms, 1ms] meet at 0.
    const metrics = world.clock.metrics();
    assert.equal(metrics.synchronized, true);
    assert.equal(metrics.offsetUs, 0);
    assert.equal(metrics.intervalWidthUs, 0);
  });

  it('outvotes a lying minority', () => {
    // Proves fault tolerance: of five clocks, two are wildly wrong (+10 s, -7 s); the three
    // honest ones (within a millisecond) form the quorum and the liars count as false.
    const world = new World(exact, [
      peer(offset(700)),
      peer(offset(10 * sUs)),
      peer(offset(-400)),
      peer(offset(-7 * sUs)),
    ]);
    world.run(30 * sUs, accurateWithin(2 * msUs));
    const metrics = world.clock.metrics();
    assert.equal(metrics.synchronized, true);
    assert.equal(metrics.sourcesTrue, 3);
    assert.equal(metrics.sourcesFalse, 2);
  });

  it('outvotes its own clock when that is the liar', () => {
    // Proves the primary does not trust itself: its wall clock is an hour ahead, its two peers
    // agree, and realtime() serves their time, not its own.
    const world = new World(offset(3600 * sUs), [peer(exact), peer(offset(300))]);
    world.run(30 * sUs, accurateWithin(2 * msUs));
    const metrics = world.clock.metrics();
    assert.equal(metrics.synchronized, true);
    assert.equal(metrics.sourcesTrue, 2);
    assert.ok(Math.abs((metrics.offsetUs ?? 0) + 3600 * sUs) <= 2 * msUs);
  });

  it('refuses to tell the time when no quorum agrees within the tolerance', () => {
    // Proves the refusal: the peers are 2 s ahead and 2 s behind, no two clocks are within
    // 500 ms, so realtime() stays null, and every window that closes counts as a sync error.
    const world = new World(exact, [peer(offset(2 * sUs)), peer(offset(-2 * sUs))]);
    world.run(35 * sUs, (w) => assert.equal(w.clock.realtime(), null));
    const metrics = world.clock.metrics();
    assert.equal(metrics.synchronized, false);
    assert.equal(metrics.epochCount, 0);
    assert.equal(metrics.syncErrorCount, 3);
    const expired = world.events.filter((e) => e.kind === 'window_expired');
    assert.equal(expired.length, 3);
    assert.deepEqual(expired[0], {
      kind: 'window_expired',
      reason: 'no_agreement',
      sourcesSampled: 3,
      sampleCount: 20,
    });
  });

  it('agrees within the tolerance and not beyond it; the tolerance is configurable', () => {
    // Proves the meaning of toleranceUs: clocks at most that far apart agree. A peer 450 ms
    // ahead agrees with us at 500 ms; a second peer 1.2 s ahead agrees with nobody. At 400 ms
    // nothing agrees.
    const peers = (): Peer[] => [peer(offset(450 * msUs), 0), peer(offset(1200 * msUs), 0)];
    const loose = new World(exact, peers());
    loose.run(5 * sUs);
    assert.equal(loose.clock.metrics().synchronized, true);
    assert.equal(loose.clock.metrics().sourcesTrue, 2);
    const strict = new World(exact, peers(), { toleranceUs: 400 * msUs });
    strict.run(25 * sUs, (w) => assert.equal(w.clock.realtime(), null));
    assert.equal(strict.clock.metrics().syncErrorCount, 2);
  });

  it('reports a partition when too few sources answer', () => {
    // Proves the failure reason: with both peers silent only our own clock is sampled.
    const silent = (): Peer => ({ wall: exact, roundTripUs: msUs, reachable: () => false });
    const world = new World(exact, [silent(), silent()]);
    world.run(10 * sUs);
    assert.deepEqual(world.events, [
      { kind: 'window_expired', reason: 'partitioned', sourcesSampled: 1, sampleCount: 0 },
    ]);
  });

  it('drops a drifting peer and stays accurate with the others', () => {
    // Proves drift handling: peer 1 gains 5 ms a second; after a minute and a half it is past
    // the tolerance, yet we and peer 2 still agree, so time stays accurate throughout.
    const world = new World(exact, [peer(drift(5000)), peer(exact)]);
    world.run(150 * sUs, accurateWithin(2 * msUs));
    assert.equal(world.clock.metrics().synchronized, true);
    assert.equal(world.clock.metrics().sourcesTrue, 2);
  });

  it('corrects its own drifting wall clock from the quorum', () => {
    // Proves that a local wall clock running 0.5% fast (600 ms ahead after two minutes, past the
    // tolerance) is corrected: realtime() follows the peers, not the local clock.
    const world = new World(drift(5000), [peer(exact), peer(exact)]);
    world.run(120 * sUs, accurateWithin(2 * msUs));
    assert.equal(world.clock.metrics().synchronized, true);
  });

  it('loses synchronisation when the clocks drift apart', () => {
    // Proves that agreement is not sticky: the peers drift apart at 2 ms a second each way,
    // so after about four minutes no two clocks are within 500 ms; once the last epoch ages
    // out realtime() is null. While it answers, it is within the tolerance of true time.
    const world = new World(exact, [peer(drift(2000)), peer(drift(-2000))]);
    world.run(60 * sUs, accurateWithin(500 * msUs));
    assert.equal(world.clock.metrics().synchronized, true);
    world.run(300 * sUs, accurateWithin(500 * msUs));
    assert.equal(world.clock.realtime(), null);
    const metrics = world.clock.metrics();
    assert.equal(metrics.synchronized, false);
    assert.ok(metrics.syncErrorCount >= 1);
    assert.equal(metrics.epochExpiredCount, 1);
    assert.ok(world.events.some((e) => e.kind === 'epoch_expired'));
  });

  it('is not moved by a jump of its own wall clock, forwards or backwards', () => {
    // Proves jump safety: samples are taken against the wall clock read when the window
    // opened, carried forward by the monotonic clock, and realtime() is clamped to the agreed
    // interval, so a jump of an hour (at 20 s) or back two minutes (at 50 s) never shows.
    const local = jump(50 * sUs, -120 * sUs, jump(20 * sUs, 3600 * sUs));
    const world = new World(local, [peer(exact), peer(offset(-500))]);
    world.run(90 * sUs, accurateWithin(2 * msUs));
    assert.equal(world.clock.metrics().synchronized, true);
  });

  it('outvotes a peer whose clock jumps', () => {
    // Proves that a peer jumping an hour ahead becomes a false chimer, not the new time.
    const world = new World(exact, [peer(jump(15 * sUs, 3600 * sUs)), peer(exact)]);
    world.run(60 * sUs, accurateWithin(2 * msUs));
    assert.equal(world.clock.metrics().synchronized, true);
    assert.equal(world.clock.metrics().sourcesTrue, 2);
  });

  it('discards the samples of a window that closed without agreement', () => {
    // Proves window expiry: five replicas need three clocks. Peer 1 answers only in the first
    // window, peer 2 only in the second; were samples kept across windows, the three would agree.
    const only =
      (fromUs: number, toUs: number) =>
      (t: number): boolean =>
        t - epochTrueUs >= fromUs && t - epochTrueUs < toUs;
    const silent: Peer = { wall: exact, roundTripUs: msUs, reachable: () => false };
    const world = new World(exact, [
      { wall: exact, roundTripUs: msUs, reachable: only(0, 2 * sUs) },
      { wall: exact, roundTripUs: msUs, reachable: only(12 * sUs, 14 * sUs) },
      silent,
      silent,
    ]);
    world.run(9 * sUs);
    assert.equal(world.clock.metrics().windowSourcesSampled, 2);
    world.run(11 * sUs, (w) => assert.equal(w.clock.realtime(), null));
    assert.equal(world.clock.metrics().syncErrorCount, 2);
    assert.deepEqual(
      world.events.map((e) => (e.kind === 'window_expired' ? e.sourcesSampled : null)),
      [2, 2],
    );
  });

  it('keeps serving an epoch through a partition until it ages out', () => {
    // Proves epoch expiry: after synchronising, the peers fall silent; the epoch (30 s from the
    // opening of its window) still answers for a while, then realtime() returns null.
    const until = (toUs: number) => (t: number) => t - epochTrueUs < toUs;
    const world = new World(exact, [
      { wall: exact, roundTripUs: msUs, reachable: until(4 * sUs) },
      { wall: exact, roundTripUs: msUs, reachable: until(4 * sUs) },
    ]);
    world.run(4 * sUs);
    assert.equal(world.clock.metrics().synchronized, true);
    world.run(25 * sUs, accurateWithin(msUs));
    assert.notEqual(world.clock.realtime(), null);
    world.run(5 * sUs);
    assert.equal(world.clock.realtime(), null);
    assert.equal(world.clock.metrics().epochExpiredCount, 1);
    assert.equal(world.clock.metrics().offsetUs, null);
    assert.notEqual(world.clock.lastSynchronizedOffsetUs, null, 'the last offset is kept');
  });

  it('rejects bad samples as values, never as assertions', () => {
    // Proves validation of what came off the network: a garbled reading, a pong claiming to
    // precede its ping, a ping from before the window, and a sample for an overdue window.
    const world = new World(exact, [peer(exact), peer(exact)]);
    const clock = world.clock;
    const p = asReplicaIndex(1);
    const now = world.monotonicAt(world.trueUs);
    const wall = world.trueUs;
    const rejected = (reason: string) => ({ status: 'rejected', reason });
    assert.deepEqual(clock.learn(p, Number.NaN, wall, now), rejected('invalid'));
    assert.deepEqual(clock.learn(p, now, wall + 0.5, now), rejected('invalid'));
    assert.deepEqual(clock.learn(p, now + 1, wall, now), rejected('order'));
    assert.deepEqual(clock.learn(p, now - 1, wall, now), rejected('stale'));
    assert.deepEqual(clock.learn(p, now, wall, now + 10 * sUs + 1), rejected('window_expired'));
    assert.deepEqual(clock.learn(p, now, wall, now), { status: 'learned' });
    assert.equal(clock.metrics().sampleRejectedCount, 5);
    assert.equal(clock.metrics().sampleCount, 1);
    assert.throws(() => clock.learn(asReplicaIndex(0), now, wall, now), /own clock/);
  });

  it('uses its own wall clock in a cluster of one', () => {
    // Proves the degenerate cluster: nobody to agree with, so realtime() is the local clock.
    const world = new World(offset(123), []);
    world.run(sUs);
    assert.equal(world.clock.realtime(), world.trueUs + 123);
    assert.equal(world.clock.metrics().synchronized, true);
    assert.deepEqual(world.events, []);
  });
});
