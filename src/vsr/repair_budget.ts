// Repair scheduling: which peer to ask for a missing or corrupt prepare. Repair should go to the
// peer that answers fastest, without flooding anyone and without getting stuck on a peer that
// stopped answering. So, per peer (facts from Kimberlite and TigerBeetle's repair budget):
//   - an exponentially weighted moving average of repair latency (alpha 0.2), started low (1 ms)
//     so that peers not yet measured are tried rather than shunned;
//   - at most 2 requests in flight, so that a peer's send queue is never overrun by repairers;
//   - a request unanswered after 500 ms expires: its budget returns, and the time waited is fed
//     into the average, so a crashed peer's latency climbs and traffic moves elsewhere;
//   - 10% of choices go to a random eligible peer instead of the fastest, so that estimates stay
//     fresh and a peer that recovered gets the chance to prove it.
//
// Invariants (checked after every change): no peer has more than inflightPerPeerMax requests in
// flight; available + in flight = capacity; this replica never appears as a peer.
//
// The module is pure: time is the caller's monotonic microseconds, passed in; randomness is the
// injected `random`, seeded by the caller, consumed in a fixed pattern (one draw per choice, a
// second one when the choice is an experiment), so a seed replays the same choices.

import { assert } from '../core/assert.js';
import { asReplicaIndex } from '../core/types.js';
import type { ReplicaIndex } from '../core/types.js';

export interface RepairBudgetOptions {
  readonly replica: ReplicaIndex;
  /** Replicas in the cluster, this one included; every other one may be asked. */
  readonly replicaCount: number;
  /** Uniform in [0, 1), seeded by the caller. */
  readonly random: () => number;
  /** Default 2. */
  readonly inflightPerPeerMax?: number;
  /** A request unanswered this long expires. Default 500 ms. */
  readonly expiryUs?: number;
  /** Weight of a new latency sample in the average. Default 0.2. */
  readonly ewmaAlpha?: number;
  /** Share of choices that go to a random eligible peer. Default 0.1. */
  readonly experimentChance?: number;
  /** Latency assumed for a peer not yet measured. Default 1 ms. */
  readonly latencyInitialUs?: number;
}

export const repairBudgetDefaults = {
  inflightPerPeerMax: 2,
  expiryUs: 500_000,
  ewmaAlpha: 0.2,
  experimentChance: 0.1,
  latencyInitialUs: 1_000,
} as const;

export type RepairResponseResult =
  /** The response answered a request in flight; `latencyUs` went into the average. */
  | { readonly status: 'accepted'; readonly latencyUs: number }
  /** No such request in flight: a duplicate, a response after expiry, or unsolicited. */
  | { readonly status: 'unknown' };

/** A request that expired in onTick(); the replica may ask another peer. */
export interface RepairExpired {
  readonly peer: ReplicaIndex;
  readonly id: number;
  readonly waitedUs: number;
}

export interface RepairPeerMetrics {
  readonly peer: ReplicaIndex;
  readonly inflightCount: number;
  readonly ewmaLatencyUs: number;
}

/** A snapshot for metrics (vsr_repair_*). Counters only grow. */
export interface RepairBudgetMetrics {
  /** Requests that may be in flight at once, over all peers. */
  readonly capacity: number;
  /** capacity minus in flight (vsr_repair_budget_available). */
  readonly available: number;
  /** vsr_repair_inflight_count. */
  readonly inflightCount: number;
  /** One entry per peer, in replica order (vsr_repair_ewma_latency_ms per replica). */
  readonly peers: readonly RepairPeerMetrics[];
  readonly sentCount: number;
  readonly completedCount: number;
  readonly expiredCount: number;
  /** Choices that went to a random peer rather than the fastest. */
  readonly experimentCount: number;
  /** Responses that matched no request in flight. */
  readonly unknownResponseCount: number;
}

interface PeerState {
  /** Request id → monotonic microseconds when sent. */
  readonly inflight: Map<number, number>;
  ewmaLatencyUs: number;
}

export class RepairBudget {
  readonly replica: ReplicaIndex;
  readonly replicaCount: number;
  readonly inflightPerPeerMax: number;
  readonly expiryUs: number;
  readonly ewmaAlpha: number;
  readonly experimentChance: number;
  readonly capacity: number;

  private readonly random: () => number;
  /** Index = replica; null for this replica. */
  private readonly peers: (PeerState | null)[];
  private inflightCount = 0;
  private sentCount = 0;
  private completedCount = 0;
  private expiredCount = 0;
  private experimentCount = 0;
  private unknownResponseCount = 0;

  constructor(options: RepairBudgetOptions) {
    assert(Number.isInteger(options.replicaCount) && options.replicaCount >= 1, 'replicaCount');
    assert(options.replica < options.replicaCount, 'replica index out of range');
    this.replica = options.replica;
    this.replicaCount = options.replicaCount;
    this.random = options.random;
    this.inflightPerPeerMax = options.inflightPerPeerMax ?? repairBudgetDefaults.inflightPerPeerMax;
    this.expiryUs = options.expiryUs ?? repairBudgetDefaults.expiryUs;
    this.ewmaAlpha = options.ewmaAlpha ?? repairBudgetDefaults.ewmaAlpha;
    this.experimentChance = options.experimentChance ?? repairBudgetDefaults.experimentChance;
    const latencyInitialUs = options.latencyInitialUs ?? repairBudgetDefaults.latencyInitialUs;
    assert(Number.isInteger(this.inflightPerPeerMax) && this.inflightPerPeerMax >= 1);
    assert(this.expiryUs > 0, 'expiryUs must be positive');
    assert(this.ewmaAlpha > 0 && this.ewmaAlpha <= 1, 'ewmaAlpha in (0, 1]');
    assert(this.experimentChance >= 0 && this.experimentChance <= 1, 'experimentChance');
    assert(latencyInitialUs >= 0, 'latencyInitialUs must not be negative');
    this.peers = [];
    for (let index = 0; index < this.replicaCount; index++) {
      const own = index === this.replica;
      this.peers.push(own ? null : { inflight: new Map(), ewmaLatencyUs: latencyInitialUs });
    }
    this.capacity = this.inflightPerPeerMax * (this.replicaCount - 1);
  }

  /**
   * Picks the peer to ask among `candidates` (peers that can serve the repair, not this
   * replica): usually the eligible one with the lowest average latency (the lowest index on a
   * tie), on `experimentChance` of calls a uniformly random eligible one. A peer is eligible
   * while it has budget and, when `id` is given, is not already being asked for `id`.
   * Returns null when none is eligible. Does not reserve budget: call onRequestSent.
   */
  choosePeer(candidates: readonly ReplicaIndex[], id?: number): ReplicaIndex | null {
    const eligible = this.eligible(candidates, id);
    if (eligible.length === 0) return null;
    if (this.draw() >= this.experimentChance) return this.fastest(eligible);
    this.experimentCount += 1;
    const chosen = eligible[Math.floor(this.draw() * eligible.length)];
    assert(chosen !== undefined);
    return chosen;
  }

  /** Records a request `id` sent to `peer` at monotonic `nowUs`; it uses one unit of budget. */
  onRequestSent(peer: ReplicaIndex, id: number, nowUs: number): void {
    const state = this.peer(peer);
    assert(Number.isSafeInteger(id), 'request id must be a safe integer');
    assert(Number.isFinite(nowUs), 'nowUs must be finite');
    assert(state.inflight.size < this.inflightPerPeerMax, 'repair budget exceeded for peer');
    assert(!state.inflight.has(id), 'request already in flight to this peer');
    state.inflight.set(id, nowUs);
    this.inflightCount += 1;
    this.sentCount += 1;
    this.invariants();
  }

  /**
   * Records `peer`'s answer to request `id` at monotonic `nowUs` (a prepare or a nack: either
   * way the peer answered). Responses come off the network, so an unexpected one is a value.
   */
  onResponse(peer: ReplicaIndex, id: number, nowUs: number): RepairResponseResult {
    const state = this.peer(peer);
    const sentUs = state.inflight.get(id);
    if (sentUs === undefined) {
      this.unknownResponseCount += 1;
      return { status: 'unknown' };
    }
    const latencyUs = nowUs - sentUs;
    assert(latencyUs >= 0, 'the monotonic clock went backwards');
    state.inflight.delete(id);
    this.inflightCount -= 1;
    this.completedCount += 1;
    this.learnLatency(state, latencyUs);
    this.invariants();
    return { status: 'accepted', latencyUs };
  }

  /**
   * Expires requests in flight for `expiryUs` or longer at monotonic `nowUs`: their budget
   * returns and the time waited counts as that peer's latency. Returns them, in replica order,
   * then in the order they were sent.
   */
  onTick(nowUs: number): RepairExpired[] {
    const expired: RepairExpired[] = [];
    this.peers.forEach((state, index) => {
      if (state === null) return;
      for (const [id, sentUs] of state.inflight) {
        const waitedUs = nowUs - sentUs;
        assert(waitedUs >= 0, 'the monotonic clock went backwards');
        if (waitedUs < this.expiryUs) continue;
        state.inflight.delete(id);
        this.inflightCount -= 1;
        this.learnLatency(state, waitedUs);
        expired.push({ peer: asReplicaIndex(index), id, waitedUs });
      }
    });
    this.expiredCount += expired.length;
    this.invariants();
    return expired;
  }

  /** Forgets every request in flight (a view change or state sync made them moot). */
  clear(): void {
    for (const state of this.peers) state?.inflight.clear();
    this.inflightCount = 0;
    this.invariants();
  }

  /** Requests in flight to `peer`. */
  inflight(peer: ReplicaIndex): number {
    return this.peer(peer).inflight.size;
  }

  /** The average repair latency of `peer`, in microseconds. */
  ewmaLatencyUs(peer: ReplicaIndex): number {
    return this.peer(peer).ewmaLatencyUs;
  }

  /** A snapshot for metrics. */
  metrics(): RepairBudgetMetrics {
    const peers: RepairPeerMetrics[] = [];
    this.peers.forEach((state, index) => {
      if (state === null) return;
      peers.push({
        peer: asReplicaIndex(index),
        inflightCount: state.inflight.size,
        ewmaLatencyUs: state.ewmaLatencyUs,
      });
    });
    return {
      capacity: this.capacity,
      available: this.capacity - this.inflightCount,
      inflightCount: this.inflightCount,
      peers,
      sentCount: this.sentCount,
      completedCount: this.completedCount,
      expiredCount: this.expiredCount,
      experimentCount: this.experimentCount,
      unknownResponseCount: this.unknownResponseCount,
    };
  }

  private peer(peer: ReplicaIndex): PeerState {
    assert(peer !== this.replica, 'a replica does not repair from itself');
    const state = this.peers[peer];
    assert(state !== undefined && state !== null, 'peer index out of range');
    return state;
  }

  private eligible(candidates: readonly ReplicaIndex[], id: number | undefined): ReplicaIndex[] {
    const eligible: ReplicaIndex[] = [];
    assert(new Set(candidates).size === candidates.length, 'candidates must be distinct');
    for (const candidate of candidates) {
      const state = this.peer(candidate);
      if (state.inflight.size >= this.inflightPerPeerMax) continue;
      if (id !== undefined && state.inflight.has(id)) continue;
      eligible.push(candidate);
    }
    return eligible;
  }

  private fastest(eligible: readonly ReplicaIndex[]): ReplicaIndex {
    let best: ReplicaIndex | null = null;
    for (const candidate of eligible) {
      if (best === null) {
        best = candidate;
        continue;
      }
      const latency = this.peer(candidate).ewmaLatencyUs;
      const bestLatency = this.peer(best).ewmaLatencyUs;
      if (latency < bestLatency || (latency === bestLatency && candidate < best)) best = candidate;
    }
    assert(best !== null);
    return best;
  }

  private draw(): number {
    const value = this.random();
    assert(value >= 0 && value < 1, 'random() must return a number in [0, 1)');
    return value;
  }

  private learnLatency(state: PeerState, latencyUs: number): void {
    state.ewmaLatencyUs += this.ewmaAlpha * (latencyUs - state.ewmaLatencyUs);
  }

  private invariants(): void {
    let inflight = 0;
    for (const state of this.peers) {
      if (state === null) continue;
      assert(state.inflight.size <= this.inflightPerPeerMax, 'per-peer budget');
      inflight += state.inflight.size;
    }
    assert(inflight === this.inflightCount, 'in-flight count');
    assert(this.inflightCount <= this.capacity, 'capacity');
  }
}
