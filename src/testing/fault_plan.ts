// Which faults a run may inject, and the per-seed parameters of everything random.
//
// Fault classes are switched on separately (`vopr run --faults network,storage,crash,clock`):
//   network         replica and client links: loss, duplication, reordering, partitions
//                   (isolation, splits, one-way cuts)
//   client_network  the client links only (a subset of `network`, safe without repair)
//   storage         write latency spikes; at a crash, un-synced writes that reach the disk
//                   anyway or are torn; corruption of durable records and failed reads on at
//                   most f replicas
//   crash           replicas crash (losing what was not durable) and restart from their disk
//   clock           wall-clock offsets up to seconds, drift, and jumps in both directions
//   forge           a stranger on the replica network sends forged and extreme messages in the
//                   name of any sender (forger.ts): views past the wire's u32, commits of 10^9,
//                   far-ahead view changes, prepares that fail their checksums
// Without a class, its part still runs benignly: links delay packets (FIFO), writes take a
// few ticks, a clock is within a millisecond of true time.
//
// Within the enabled classes every probability is itself drawn from the seed ("swarm testing",
// as TigerBeetle's VOPR does), so that across seeds some runs see rare faults often and
// others see frequent faults rarely. The plan is a pure function of (the PRNG's state, options).

import { assert } from '../core/assert.js';
import type { Prng } from './prng.js';
import type { ReplicaTuning } from './replica_adapter.js';
import type { ClockOptions } from './sim_clock.js';
import { benignLinks } from './sim_network.js';
import type { LinkFaults, NetworkOptions, PartitionMode } from './sim_network.js';
import type { StorageOptions } from './sim_storage.js';
import type { WorkloadOptions } from './workload.js';

export const faultClasses = [
  'network',
  'client_network',
  'storage',
  'crash',
  'clock',
  'forge',
] as const;
export type FaultClass = (typeof faultClasses)[number];

export function parseFaults(text: string): Set<FaultClass> | string {
  const faults = new Set<FaultClass>();
  if (text === '' || text === 'none') return faults;
  for (const name of text.split(',').map((s) => s.trim())) {
    if (name === 'all') {
      for (const c of faultClasses) faults.add(c);
      continue;
    }
    if (!(faultClasses as readonly string[]).includes(name)) {
      return `unknown fault class "${name}" (expected ${faultClasses.join(', ')}, all or none)`;
    }
    faults.add(name as FaultClass);
  }
  return faults;
}

export function formatFaults(faults: ReadonlySet<FaultClass>): string {
  const names = faultClasses.filter((c) => faults.has(c));
  return names.length === 0 ? 'none' : names.join(',');
}

export interface CrashPlan {
  /** Per tick per running replica. */
  readonly crashProbability: number;
  readonly downTicksMean: number;
  /** Replicas down at once, at most. */
  readonly downCountMax: number;
}

export interface RunPlan {
  readonly network: NetworkOptions;
  readonly storage: StorageOptions;
  readonly storageHealed: StorageOptions;
  readonly clock: ClockOptions;
  readonly crash: CrashPlan | null;
  /** Replicas whose durable records may be corrupted (at most f of them). */
  readonly corruptibleReplicas: readonly number[];
  /** Per tick, while faults are on. */
  readonly corruptionProbability: number;
  readonly workload: WorkloadOptions;
  readonly tuning: ReplicaTuning;
}

function links(prng: Prng, on: boolean, replicaLinks: boolean): LinkFaults {
  if (!on) return benignLinks;
  return {
    lossProbability: prng.pick([0, 0.005, 0.02, 0.05, 0.1]),
    duplicateProbability: prng.pick([0, 0.01, 0.05]),
    corruptProbability: replicaLinks ? prng.pick([0, 0.001, 0.01]) : 0,
    reorder: prng.chance(0.5),
  };
}

function networkPlan(
  prng: Prng,
  faults: ReadonlySet<FaultClass>,
  replicaCount: number,
  clientCount: number,
): NetworkOptions {
  const replicaLinksFaulty = faults.has('network');
  const clientLinksFaulty = faults.has('network') || faults.has('client_network');
  const partitions = replicaLinksFaulty && replicaCount > 1;
  const modes: PartitionMode[] = ['isolate_single', 'split', 'asymmetric'];
  return {
    replicaCount,
    clientCount,
    delayMeanTicks: prng.intInclusive(1, 4),
    delayMinTicks: 1,
    replicaLinks: links(prng, replicaLinksFaulty, true),
    clientLinks: links(prng, clientLinksFaulty, false),
    partitionProbability: partitions ? prng.pick([0.001, 0.003, 0.01]) : 0,
    unpartitionProbability: prng.pick([0.01, 0.05, 0.2]),
    partitionStabilityTicks: prng.intInclusive(10, 200),
    partitionModes: prng.chance(0.5) ? modes : [prng.pick(modes)],
  };
}

function storagePlan(prng: Prng, on: boolean): StorageOptions {
  const writeLatencyMaxTicks = prng.intInclusive(1, 4);
  return {
    writeLatencyMinTicks: 1,
    writeLatencyMaxTicks,
    writeSpikeProbability: on ? prng.pick([0, 0.01, 0.05]) : 0,
    writeSpikeTicksMax: 40,
    readLatencyMinTicks: 1,
    readLatencyMaxTicks: 3,
    crashWriteSurvivalProbability: on ? prng.pick([0, 0.5, 0.9]) : 0,
    crashTornProbability: on ? prng.pick([0, 0.3, 1]) : 0,
    crashSuperblockSurvivalProbability: on ? 0.5 : 0,
    // Applied only on the replicas whose storage may be faulty (RunPlan.corruptibleReplicas).
    readFaultProbability: on ? prng.pick([0, 0.01, 0.05]) : 0,
  };
}

function clockPlan(prng: Prng, on: boolean): ClockOptions {
  if (!on) return { offsetUsMax: 1000, driftPpmMax: 20, jumpProbability: 0, jumpUsMax: 0 };
  return {
    offsetUsMax: prng.pick([10_000, 500_000, 5_000_000]),
    driftPpmMax: prng.pick([100, 1000, 50_000]),
    jumpProbability: prng.pick([0, 0.001, 0.01]),
    jumpUsMax: prng.pick([100_000, 2_000_000, 30_000_000]),
  };
}

function workloadPlan(prng: Prng, clientCount: number): WorkloadOptions {
  return {
    clientCount,
    tenantNamePoolSize: prng.intInclusive(1, 6),
    streamNamePoolSize: prng.intInclusive(1, 4),
    weights: {
      createTenant: prng.intInclusive(1, 3),
      createStream: prng.intInclusive(1, 4),
      append: prng.intInclusive(2, 12),
      appendExpected: prng.intInclusive(0, 8),
      read: prng.intInclusive(0, 6),
      staleRead: prng.intInclusive(0, 3),
    },
    requestTimeoutTicks: prng.intInclusive(20, 80),
    backoffTicksMax: prng.intInclusive(2, 20),
    thinkTicksMax: prng.pick([0, 5, 20]),
  };
}

export interface PlanOptions {
  readonly replicaCount: number;
  readonly faults: ReadonlySet<FaultClass>;
}

export function makePlan(prng: Prng, options: PlanOptions): RunPlan {
  const n = options.replicaCount;
  assert(n >= 1, 'at least one replica');
  const f = Math.floor((n - 1) / 2);
  const clientCount = prng.intInclusive(1, 8);
  const storageOn = options.faults.has('storage');
  const crash: CrashPlan | null = options.faults.has('crash')
    ? {
        crashProbability: prng.pick([0.0005, 0.002, 0.005]),
        downTicksMean: prng.pick([5, 30, 150]),
        downCountMax: n === 1 ? 1 : prng.chance(0.5) ? f : n,
      }
    : null;
  const corruptible = storageOn
    ? prng.shuffle(Array.from({ length: n }, (_, i) => i)).slice(0, f)
    : [];
  return {
    network: networkPlan(prng, options.faults, n, clientCount),
    storage: storagePlan(prng, storageOn),
    storageHealed: storagePlan(prng, false),
    clock: clockPlan(prng, options.faults.has('clock')),
    crash,
    corruptibleReplicas: corruptible,
    corruptionProbability: corruptible.length > 0 ? prng.pick([0.001, 0.005, 0.02]) : 0,
    workload: workloadPlan(prng, clientCount),
    tuning: {
      pipelinePrepareCountMax: prng.pick([1, 2, 4, 8]),
      prepareRequestCountMax: prng.pick([1, 2, 8, 64]),
      clientSessionCountMax: clientCount + prng.intInclusive(0, 4),
      heartbeatTicks: prng.intInclusive(5, 20),
      scrubReadsPerTickMax: prng.pick([0, 1, 4]),
      clockSync: n > 1 && prng.chance(0.5),
    },
  };
}
