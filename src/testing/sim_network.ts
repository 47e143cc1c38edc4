// The simulated network: decides, for each packet, whether it arrives and after how many ticks.
// Nodes are numbered replicas first (0..replicaCount-1), then clients. The cluster harness puts
// the packets themselves on its agenda (deep-copied, so no two nodes share an object); this file
// only holds the links' behaviour, which comes from the seed:
//
// - delay: an exponential draw with a per-seed mean and minimum, per packet;
// - order: links are FIFO (as TCP is) unless reordering is on, when a packet may overtake;
// - loss and duplication: per packet, with per-seed probabilities, separately for replica links
//   and client links;
// - partitions between replicas: single-node isolation, a random split, or an asymmetric cut
//   (one direction only), which last at least `partitionStabilityTicks` and then heal with a
//   per-tick probability.
//
// Invariants: a packet to oneself never goes through here; partitions involve replica links
// only (clients reach every replica unless loss says otherwise); heal() returns every link to
// the benign behaviour (delay and FIFO order only) for the liveness phase.

import { assert } from '../core/assert.js';
import type { Prng } from './prng.js';

export type PartitionMode = 'isolate_single' | 'split' | 'asymmetric';

export interface LinkFaults {
  readonly lossProbability: number;
  readonly duplicateProbability: number;
  /**
   * Per packet that carries a prepare: one bit of a carried prepare is flipped in flight (as if
   * a corruption slipped past the frame checksum, or a peer sent garbage): the receiver must
   * validate what it is sent. Used on replica links only.
   */
  readonly corruptProbability: number;
  /** When false, packets on one link arrive in the order they were sent. */
  readonly reorder: boolean;
}

export interface NetworkOptions {
  readonly replicaCount: number;
  readonly clientCount: number;
  readonly delayMeanTicks: number;
  readonly delayMinTicks: number;
  readonly replicaLinks: LinkFaults;
  readonly clientLinks: LinkFaults;
  /** Per tick, while unpartitioned. 0 disables partitions. */
  readonly partitionProbability: number;
  /** Per tick, once the partition has lasted its stability period. */
  readonly unpartitionProbability: number;
  readonly partitionStabilityTicks: number;
  readonly partitionModes: readonly PartitionMode[];
}

export const benignLinks: LinkFaults = {
  lossProbability: 0,
  duplicateProbability: 0,
  corruptProbability: 0,
  reorder: false,
};

export interface NetworkStats {
  sent: number;
  dropped: number;
  duplicated: number;
  partitions: number;
  corrupted: number;
}

export class SimNetwork {
  readonly stats: NetworkStats = {
    sent: 0,
    dropped: 0,
    duplicated: 0,
    partitions: 0,
    corrupted: 0,
  };
  private options: NetworkOptions;
  private readonly nodeCount: number;
  /** blocked[from * nodeCount + to]: the link is cut by the current partition. */
  private readonly blocked: Uint8Array;
  /** The latest arrival tick scheduled on each link, for FIFO order. */
  private readonly lastArrival: Float64Array;
  private partitionedSinceTick: number | null = null;
  partitionDescription = 'none';

  constructor(
    private readonly prng: Prng,
    options: NetworkOptions,
  ) {
    assert(options.replicaCount >= 1 && options.clientCount >= 0, 'node counts');
    assert(options.delayMinTicks >= 1, 'a packet takes at least one tick');
    this.options = options;
    this.nodeCount = options.replicaCount + options.clientCount;
    this.blocked = new Uint8Array(this.nodeCount * this.nodeCount);
    this.lastArrival = new Float64Array(this.nodeCount * this.nodeCount);
  }

  private isReplica(node: number): boolean {
    return node < this.options.replicaCount;
  }

  /**
   * Routes one packet sent at `now`: returns the delays, in ticks, of the copies that will
   * arrive — none when it is lost or the link is cut, two when it is duplicated.
   */
  route(from: number, to: number, now: number): number[] {
    assert(from !== to, 'no packets to oneself');
    assert(from < this.nodeCount && to < this.nodeCount, 'node in range');
    this.stats.sent += 1;
    const link = from * this.nodeCount + to;
    const faults =
      this.isReplica(from) && this.isReplica(to)
        ? this.options.replicaLinks
        : this.options.clientLinks;
    if (this.blocked[link] === 1 || this.prng.chance(faults.lossProbability)) {
      this.stats.dropped += 1;
      return [];
    }
    const delays = [this.delay(link, now, faults.reorder)];
    if (this.prng.chance(faults.duplicateProbability)) {
      this.stats.duplicated += 1;
      delays.push(this.delay(link, now, faults.reorder) + this.prng.intInclusive(0, 10));
    }
    return delays;
  }

  private delay(link: number, now: number, reorder: boolean): number {
    const drawn =
      now + this.prng.exponential(this.options.delayMeanTicks, this.options.delayMinTicks);
    const arrival = reorder ? drawn : Math.max(drawn, this.lastArrival[link] ?? 0);
    this.lastArrival[link] = Math.max(arrival, this.lastArrival[link] ?? 0);
    return arrival - now;
  }

  /** Whether to flip a bit in this replica-to-replica packet (see LinkFaults). */
  corrupts(): boolean {
    const corrupt = this.prng.chance(this.options.replicaLinks.corruptProbability);
    if (corrupt) this.stats.corrupted += 1;
    return corrupt;
  }

  /** Called once per tick: starts or ends partitions. */
  step(now: number): void {
    const options = this.options;
    if (this.partitionedSinceTick === null) {
      if (options.replicaCount > 1 && this.prng.chance(options.partitionProbability)) {
        this.partition(this.prng.pick(options.partitionModes));
        this.partitionedSinceTick = now;
      }
      return;
    }
    const stable = now - this.partitionedSinceTick >= options.partitionStabilityTicks;
    if (stable && this.prng.chance(options.unpartitionProbability)) this.unpartition();
  }

  private partition(mode: PartitionMode): void {
    const n = this.options.replicaCount;
    const side = new Uint8Array(n);
    if (mode === 'isolate_single') {
      side[this.prng.below(n)] = 1;
    } else {
      const size = this.prng.intInclusive(1, n - 1);
      const order = this.prng.shuffle(Array.from({ length: n }, (_, i) => i));
      for (const i of order.slice(0, size)) side[i] = 1;
    }
    const oneWay = mode === 'asymmetric';
    for (let a = 0; a < n; a++) {
      for (let b = 0; b < n; b++) {
        if (a === b || side[a] === side[b]) continue;
        // Asymmetric: only packets from side 1 to side 0 are cut.
        if (oneWay && side[a] !== 1) continue;
        this.blocked[a * this.nodeCount + b] = 1;
      }
    }
    this.stats.partitions += 1;
    const members = Array.from(side).flatMap((s, i) => (s === 1 ? [i] : []));
    this.partitionDescription = `${mode} [${members.join(',')}]`;
  }

  private unpartition(): void {
    this.blocked.fill(0);
    this.partitionedSinceTick = null;
    this.partitionDescription = 'none';
  }

  /** Ends every fault: no partition, no loss, no duplication, FIFO links. Delay remains. */
  heal(): void {
    this.unpartition();
    this.options = {
      ...this.options,
      replicaLinks: benignLinks,
      clientLinks: benignLinks,
      partitionProbability: 0,
    };
  }
}
