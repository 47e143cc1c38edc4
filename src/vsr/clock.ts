// Cluster clock synchronisation: the time the primary may put on a prepare. Only the primary
// timestamps, and it must not trust its own wall clock alone — an operator can set it an hour
// ahead, NTP can lose it — so it estimates cluster time from the clocks of a quorum of replicas
// and refuses to timestamp (realtime() returns null) when no quorum agrees.
//
// Samples. The replica pings a peer at local monotonic time m0; the peer answers with its wall
// clock reading w; the answer arrives at m1. The peer read w at some instant between m0 and m1,
// so its offset from our wall clock (peer minus us) lies in
//     [w - wallAt(m1), w - wallAt(m0)],   wallAt(m) = window.realtimeUs + (m - window.monotonicUs),
// an interval as wide as the round trip. Our wall clock is read once, when a window opens, and
// carried forward by the monotonic clock, so a jump of the local wall clock during a window
// cannot distort the samples. Per peer and window only the narrowest sample (the shortest round
// trip, the newest on a tie) is kept: one sample per source bounds the memory.
//
// Windows and epochs (after TigerBeetle's clock). Samples collect in a window. Once a window is
// windowMinUs old and has learned something new, each tick runs Marzullo's algorithm over our
// own source (offset [0, 0]) and every peer's sample, each widened by an error margin. A quorum
// "agrees within toleranceUs" when some offset lies within toleranceUs/2 of each of its intervals,
// i.e. their clocks are at most toleranceUs apart. If a quorum agrees at margin toleranceUs/2, the
// margin is halved while a quorum still agrees, for the tightest interval; the window then
// becomes the epoch that realtime() reads, and a new window opens. A window that reaches
// windowMaxUs without agreement is discarded (a sync error); an epoch older than epochMaxUs is
// dropped, because drift accumulates: from then on realtime() is null until a window agrees.
//
// realtime() is the local wall clock clamped into the epoch's interval, carried forward by the
// monotonic clock: within the interval our own clock is as good as any, outside it the quorum
// wins. Keeping prepare timestamps monotonic stays the replica's job (max with the last one).
//
// All times are microseconds (the unit of TimestampUs); the clock reads them through the injected
// ClockTime, so the simulator decides what time it is. A cluster of one has nobody to agree with
// and uses its own wall clock.

import { assert } from '../core/assert.js';
import type { ReplicaIndex } from '../core/types.js';
import { smallestInterval } from './marzullo.js';
import type { MarzulloInterval, MarzulloSource } from './marzullo.js';

/** The time sources the clock reads; injected so that tests and the simulator control them. */
export interface ClockTime {
  /** Local monotonic clock, microseconds from an arbitrary origin; never goes backwards. */
  monotonicUs(): number;
  /** Local wall clock, microseconds since the Unix epoch; may drift and jump either way. */
  realtimeUs(): number;
}

export interface ClockOptions {
  readonly replica: ReplicaIndex;
  /** Clock sources in the cluster, this replica included. */
  readonly replicaCount: number;
  readonly time: ClockTime;
  /** Sources that must agree (this replica included); a majority by default. */
  readonly quorum?: number;
  /** Agreeing clocks may be at most this far apart. Default 500 ms. */
  readonly toleranceUs?: number;
  /** A window collects samples at least this long before it may synchronise. Default 3 s. */
  readonly windowMinUs?: number;
  /** A window that has not synchronised by this age is discarded. Default 10 s. */
  readonly windowMaxUs?: number;
  /** An epoch is trusted at most this long after its window opened. Default 30 s. */
  readonly epochMaxUs?: number;
}

export const clockDefaults = {
  toleranceUs: 500_000,
  windowMinUs: 3_000_000,
  windowMaxUs: 10_000_000,
  epochMaxUs: 30_000_000,
  /** Halvings of the error margin per synchronisation attempt (20 reach 0 from 500 ms). */
  marginRoundCountMax: 64,
} as const;

/** Why learn() did not use a sample. The inputs came off the network, so these are values. */
export type ClockSampleRejection =
  /** A reading is not a safe integer. */
  | 'invalid'
  /** The pong claims to have been sent after it arrived (m0 > m1). */
  | 'order'
  /** The ping was sent before the current window opened. */
  | 'stale'
  /** The current window is past windowMaxUs and about to be discarded. */
  | 'window_expired';

export type ClockLearnResult =
  | { readonly status: 'learned' }
  | { readonly status: 'rejected'; readonly reason: ClockSampleRejection };

/** What a tick changed, for the replica to log and count. */
export type ClockEvent =
  | {
      readonly kind: 'synchronized';
      /** Bounds on the offset of cluster time from the local wall clock. */
      readonly lowerUs: number;
      readonly upperUs: number;
      readonly sourcesTrue: number;
      readonly sourcesFalse: number;
      /** The spread within which the agreeing clocks were found. */
      readonly toleranceUs: number;
      /** True when the clock was not synchronised before this epoch. */
      readonly resumed: boolean;
    }
  | {
      readonly kind: 'window_expired';
      /** 'partitioned': fewer than a quorum of sources were sampled at all. */
      readonly reason: 'partitioned' | 'no_agreement';
      readonly sourcesSampled: number;
      readonly sampleCount: number;
    }
  | { readonly kind: 'epoch_expired' };

/** A snapshot of the clock for metrics (vsr_clock_*). Counters only grow. */
export interface ClockMetrics {
  /** Whether realtime() would return a time now. */
  readonly synchronized: boolean;
  /** Midpoint of the current epoch's offset interval (cluster minus local); null if none. */
  readonly offsetUs: number | null;
  /** Width of the current epoch's offset interval: the accuracy of cluster time. */
  readonly intervalWidthUs: number | null;
  /** The spread within which the current epoch's quorum agreed. */
  readonly toleranceUs: number | null;
  /** Sources that agreed in the current epoch (this replica included); 0 without one. */
  readonly sourcesTrue: number;
  /** Sources sampled in the current epoch that disagreed with the quorum. */
  readonly sourcesFalse: number;
  /** Distinct sources (this replica included) with a sample in the open window. */
  readonly windowSourcesSampled: number;
  /** Epochs installed (successful synchronisations). */
  readonly epochCount: number;
  /** Samples accepted by learn(). */
  readonly sampleCount: number;
  /** Samples refused by learn(). */
  readonly sampleRejectedCount: number;
  /** Windows discarded without agreement (vsr_clock_sync_errors_total). */
  readonly syncErrorCount: number;
  /** Epochs that aged out before a new window agreed. */
  readonly epochExpiredCount: number;
}

interface Sample {
  readonly lowerUs: number;
  readonly upperUs: number;
}

interface Window {
  readonly monotonicUs: number;
  readonly realtimeUs: number;
  /** Index = replica; own entry is always [0, 0]. */
  readonly samples: (Sample | null)[];
  sampleCount: number;
  /** A new sample arrived since the last synchronisation attempt. */
  learned: boolean;
}

interface Epoch {
  readonly monotonicUs: number;
  readonly realtimeUs: number;
  readonly interval: MarzulloInterval;
  readonly toleranceUs: number;
}

export class Clock {
  readonly replica: ReplicaIndex;
  readonly replicaCount: number;
  readonly quorum: number;
  readonly toleranceUs: number;
  readonly windowMinUs: number;
  readonly windowMaxUs: number;
  readonly epochMaxUs: number;
  private readonly time: ClockTime;
  private window: Window;
  private epoch: Epoch | null = null;
  private epochCount = 0;
  private sampleCount = 0;
  private sampleRejectedCount = 0;
  private syncErrorCount = 0;
  private epochExpiredCount = 0;
  private lastOffsetUs: number | null = null;

  constructor(options: ClockOptions) {
    assert(Number.isInteger(options.replicaCount) && options.replicaCount >= 1, 'replicaCount');
    assert(options.replica < options.replicaCount, 'replica index out of range');
    this.replica = options.replica;
    this.replicaCount = options.replicaCount;
    this.quorum = options.quorum ?? Math.floor(options.replicaCount / 2) + 1;
    this.toleranceUs = options.toleranceUs ?? clockDefaults.toleranceUs;
    this.windowMinUs = options.windowMinUs ?? clockDefaults.windowMinUs;
    this.windowMaxUs = options.windowMaxUs ?? clockDefaults.windowMaxUs;
    this.epochMaxUs = options.epochMaxUs ?? clockDefaults.epochMaxUs;
    assert(this.quorum >= 1 && this.quorum <= this.replicaCount, 'quorum out of range');
    if (this.replicaCount > 1) assert(this.quorum > 1, 'a cluster needs more than its own clock');
    assert(this.toleranceUs >= 0, 'toleranceUs must not be negative');
    assert(this.windowMinUs >= 0 && this.windowMinUs <= this.windowMaxUs, 'window bounds');
    assert(this.windowMaxUs <= this.epochMaxUs, 'an epoch outlives its window');
    this.time = options.time;
    this.window = this.openWindow();
  }

  /**
   * The offset (cluster minus local wall clock, midpoint) of the most recently installed epoch.
   * It outlives that epoch, so an operator can see the last agreed correction while unsynchronised;
   * null until the first synchronisation.
   */
  get lastSynchronizedOffsetUs(): number | null {
    return this.lastOffsetUs;
  }

  /** A cluster of one has no other clock to agree with and uses its own wall clock. */
  get synchronizationDisabled(): boolean {
    return this.replicaCount === 1;
  }

  /**
   * Records a ping/pong exchange with `peer`: our monotonic time `m0Us` when the ping left
   * (echoed back in the pong), the peer's wall clock `peerRealtimeUs` in the pong, and our
   * monotonic time `m1Us` when the pong arrived. m0Us and peerRealtimeUs came off the network and
   * are validated, not asserted.
   */
  learn(peer: ReplicaIndex, m0Us: number, peerRealtimeUs: number, m1Us: number): ClockLearnResult {
    assert(peer !== this.replica, 'a replica does not sample its own clock');
    assert(peer < this.replicaCount, 'peer index out of range');
    assert(Number.isFinite(m1Us), 'm1 is a local monotonic reading');
    const reason = this.sampleRejection(m0Us, peerRealtimeUs, m1Us);
    if (reason !== null) {
      this.sampleRejectedCount += 1;
      return { status: 'rejected', reason };
    }
    const sample: Sample = {
      lowerUs: peerRealtimeUs - this.wallAt(m1Us),
      upperUs: peerRealtimeUs - this.wallAt(m0Us),
    };
    assert(sample.lowerUs <= sample.upperUs, 'the offset interval spans the round trip');
    const kept = this.window.samples[peer] ?? null;
    // Narrower is more accurate; on a tie the newer sample wins.
    if (kept === null || sample.upperUs - sample.lowerUs <= kept.upperUs - kept.lowerUs) {
      this.window.samples[peer] = sample;
    }
    this.window.sampleCount += 1;
    this.window.learned = true;
    this.sampleCount += 1;
    return { status: 'learned' };
  }

  /**
   * Advances the clock: tries to synchronise the open window, discards it once too old, and drops
   * an epoch once too old. Returns what changed, for logs and metrics.
   */
  tick(): ClockEvent[] {
    if (this.synchronizationDisabled) return [];
    const events: ClockEvent[] = [];
    const nowUs = this.time.monotonicUs();
    const windowAgeUs = nowUs - this.window.monotonicUs;
    assert(windowAgeUs >= 0, 'the monotonic clock went backwards');
    if (windowAgeUs >= this.windowMinUs && this.window.learned) {
      this.window.learned = false;
      const synchronized = this.synchronize();
      if (synchronized !== null) events.push(synchronized);
    }
    if (nowUs - this.window.monotonicUs >= this.windowMaxUs) {
      events.push(this.expireWindow());
    }
    if (this.epoch !== null && nowUs - this.epoch.monotonicUs >= this.epochMaxUs) {
      this.epoch = null;
      this.epochExpiredCount += 1;
      events.push({ kind: 'epoch_expired' });
    }
    return events;
  }

  /**
   * The synchronised wall time in microseconds since the Unix epoch: the local wall clock clamped
   * into the bounds a quorum agreed on. Null when no quorum agrees within toleranceUs (or the
   * epoch has aged out): the primary must then refuse to timestamp prepares.
   * Not monotonic across calls; the replica keeps its timestamps monotonic.
   */
  realtime(): number | null {
    const systemUs = this.time.realtimeUs();
    if (this.synchronizationDisabled) return systemUs;
    const epoch = this.epoch;
    if (epoch === null) return null;
    const elapsedUs = this.time.monotonicUs() - epoch.monotonicUs;
    assert(elapsedUs >= 0, 'the monotonic clock went backwards');
    // Between ticks the epoch may already be too old; do not serve it.
    if (elapsedUs >= this.epochMaxUs) return null;
    const baseUs = epoch.realtimeUs + elapsedUs;
    const lowerUs = baseUs + epoch.interval.lower;
    const upperUs = baseUs + epoch.interval.upper;
    const clusterUs = Math.min(Math.max(systemUs, lowerUs), upperUs);
    assert(lowerUs <= clusterUs && clusterUs <= upperUs);
    return clusterUs;
  }

  /** A snapshot for metrics. */
  metrics(): ClockMetrics {
    const epoch = this.epoch;
    const interval = epoch?.interval ?? null;
    return {
      synchronized: this.synchronizationDisabled || this.realtimeAvailable(),
      offsetUs: interval === null ? null : midpoint(interval),
      intervalWidthUs: interval === null ? null : interval.upper - interval.lower,
      toleranceUs: epoch?.toleranceUs ?? null,
      sourcesTrue: interval?.sourcesTrue ?? 0,
      sourcesFalse: interval?.sourcesFalse ?? 0,
      windowSourcesSampled: sourcesSampled(this.window),
      epochCount: this.epochCount,
      sampleCount: this.sampleCount,
      sampleRejectedCount: this.sampleRejectedCount,
      syncErrorCount: this.syncErrorCount,
      epochExpiredCount: this.epochExpiredCount,
    };
  }

  private realtimeAvailable(): boolean {
    if (this.epoch === null) return false;
    return this.time.monotonicUs() - this.epoch.monotonicUs < this.epochMaxUs;
  }

  private sampleRejection(
    m0Us: number,
    peerRealtimeUs: number,
    m1Us: number,
  ): ClockSampleRejection | null {
    if (!Number.isSafeInteger(m0Us) || !Number.isSafeInteger(peerRealtimeUs)) return 'invalid';
    if (m0Us > m1Us) return 'order';
    if (m0Us < this.window.monotonicUs) return 'stale';
    if (m1Us - this.window.monotonicUs > this.windowMaxUs) return 'window_expired';
    return null;
  }

  /** Our wall clock at monotonic time m, as carried forward from the window's opening. */
  private wallAt(monotonicUs: number): number {
    return this.window.realtimeUs + (monotonicUs - this.window.monotonicUs);
  }

  private openWindow(): Window {
    const samples: (Sample | null)[] = new Array<Sample | null>(this.replicaCount).fill(null);
    samples[this.replica] = { lowerUs: 0, upperUs: 0 };
    return {
      monotonicUs: this.time.monotonicUs(),
      realtimeUs: this.time.realtimeUs(),
      samples,
      sampleCount: 0,
      learned: false,
    };
  }

  /** Installs the window as the epoch if a quorum agrees; opens a new window then. */
  private synchronize(): ClockEvent | null {
    const found = this.tightestAgreement();
    if (found === null) return null;
    const resumed = !this.realtimeAvailable();
    this.epoch = {
      monotonicUs: this.window.monotonicUs,
      realtimeUs: this.window.realtimeUs,
      interval: found.interval,
      toleranceUs: found.toleranceUs,
    };
    this.epochCount += 1;
    this.lastOffsetUs = midpoint(found.interval);
    this.window = this.openWindow();
    return {
      kind: 'synchronized',
      lowerUs: found.interval.lower,
      upperUs: found.interval.upper,
      sourcesTrue: found.interval.sourcesTrue,
      sourcesFalse: found.interval.sourcesFalse,
      toleranceUs: found.toleranceUs,
      resumed,
    };
  }

  /**
   * Starting from the widest margin allowed (toleranceUs/2 on each side), halves the margin while
   * a quorum still agrees, and returns the last interval a quorum agreed on.
   */
  private tightestAgreement(): { interval: MarzulloInterval; toleranceUs: number } | null {
    let best: { interval: MarzulloInterval; toleranceUs: number } | null = null;
    let marginUs = this.toleranceUs / 2;
    for (let round = 0; round < clockDefaults.marginRoundCountMax; round++) {
      const interval = smallestInterval(this.windowSources(marginUs));
      if (interval.sourcesTrue < this.quorum) break;
      best = { interval, toleranceUs: 2 * marginUs };
      if (marginUs === 0) break;
      marginUs = Math.floor(marginUs / 2);
    }
    if (best !== null) assert(best.interval.sourcesTrue >= this.quorum);
    return best;
  }

  private windowSources(marginUs: number): MarzulloSource[] {
    const sources: MarzulloSource[] = [];
    for (const sample of this.window.samples) {
      if (sample === null) continue;
      sources.push({ lower: sample.lowerUs - marginUs, upper: sample.upperUs + marginUs });
    }
    assert(sources.length >= 1 && sources.length <= this.replicaCount);
    return sources;
  }

  private expireWindow(): ClockEvent {
    const sampled = sourcesSampled(this.window);
    const event: ClockEvent = {
      kind: 'window_expired',
      reason: sampled < this.quorum ? 'partitioned' : 'no_agreement',
      sourcesSampled: sampled,
      sampleCount: this.window.sampleCount,
    };
    this.syncErrorCount += 1;
    this.window = this.openWindow();
    return event;
  }
}

function midpoint(interval: MarzulloInterval): number {
  return Math.floor((interval.lower + interval.upper) / 2);
}

function sourcesSampled(window: Window): number {
  let count = 0;
  for (const sample of window.samples) if (sample !== null) count += 1;
  return count;
}
