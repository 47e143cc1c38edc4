// One VOPR run: a seed and a configuration in, a verdict and a trace hash out.
//
//   1. Safety phase (`ticks` ticks): clients run the workload while the enabled fault classes
//      inject faults; every checker runs as events happen and the run stops at the first
//      violation.
//   2. Liveness phase: every fault stops, crashed replicas restart, clients stop issuing new
//      operations, and within `livenessTicksMax` ticks every client operation must complete
//      and every replica must reach the cluster's highest commit.
//   3. End of run: final state comparison, acknowledged writes, and linearizability of the
//      whole client history.
//
// The verdict is the first of: crash (an exception inside replica or kernel code), safety
// violation, liveness failure, ok. Everything random comes from the seed, so `runSeed` is a
// pure function of its options: the same options give the same trace hash.

import {
  checkAckedWrites,
  checkClientHistory,
  checkFinalStates,
  checkStaleReads,
} from './checkers.js';
import type { CheckerName, LinearizabilityReport } from './checkers.js';
import { Cluster } from './cluster.js';
import type { ShellMutation } from './cluster.js';
import { formatFaults, makePlan } from './fault_plan.js';
import type { FaultClass } from './fault_plan.js';
import { Prng } from './prng.js';
import type { CanaryName } from './replica_adapter.js';
import { ReplicaCrash } from './sim_sinks.js';

export interface RunOptions {
  readonly seed: number;
  readonly replicaCount: number;
  readonly faults: ReadonlySet<FaultClass>;
  /** Ticks of the safety phase. */
  readonly ticks: number;
  readonly livenessTicksMax?: number;
  readonly canary?: CanaryName | null;
  /** A shell bug for the checkers' own tests (cluster.ts); never set by `vopr`. */
  readonly mutation?: ShellMutation;
}

export type RunStatus = 'ok' | 'safety' | 'liveness' | 'crash';

export interface RunResult {
  readonly seed: number;
  readonly status: RunStatus;
  readonly checker: CheckerName | null;
  readonly message: string;
  /** The tick at which the verdict was reached. */
  readonly tick: number;
  readonly traceHash: string;
  readonly ticks: number;
  readonly reproduce: string;
  readonly stats: RunStats;
}

export interface RunStats {
  readonly clients: number;
  readonly operations: number;
  readonly completed: number;
  readonly commits: number;
  readonly crashes: number;
  readonly packets: number;
  readonly dropped: number;
  readonly partitions: number;
  /** Bit flips: in durable journal records, and in prepares carried by messages. */
  readonly corruptions: number;
  readonly corruptedMessages: number;
  readonly readFaults: number;
  /** Replica events by kind (view changes, repairs, truncations, ...), summed over replicas. */
  readonly events: Readonly<Record<string, number>>;
  readonly linearizability: LinearizabilityReport | null;
}

export const defaultLivenessTicksMax = 3000;

/** The one-line command that replays a run. */
export function reproduceCommand(options: RunOptions): string {
  const parts = [
    'npm run vopr -- run',
    `--seed ${options.seed}`,
    `--replicas ${options.replicaCount}`,
    `--faults ${formatFaults(options.faults)}`,
    `--ticks ${options.ticks}`,
  ];
  if (options.livenessTicksMax !== undefined)
    parts.push(`--liveness-ticks ${options.livenessTicksMax}`);
  if (options.canary !== undefined && options.canary !== null)
    parts.push(`--canary ${options.canary}`);
  return parts.join(' ');
}

export function runSeed(options: RunOptions): RunResult {
  const prng = new Prng(options.seed);
  const plan = makePlan(prng.fork(), {
    replicaCount: options.replicaCount,
    faults: options.faults,
  });
  const cluster = new Cluster({
    seed: options.seed,
    replicaCount: options.replicaCount,
    faults: options.faults,
    canary: options.canary ?? null,
    plan,
    prng: prng.fork(),
    mutation: options.mutation,
  });
  const verdict = { status: 'ok' as RunStatus, checker: null as CheckerName | null, message: '' };
  let linearizability: LinearizabilityReport | null = null;
  try {
    const settled = runPhases(cluster, options);
    linearizability = finalChecks(cluster);
    const violation = cluster.checker.violation;
    if (violation !== null) {
      Object.assign(verdict, {
        status: 'safety',
        checker: violation.checker,
        message: violation.message,
      });
    } else if (!settled) {
      Object.assign(verdict, {
        status: 'liveness',
        checker: 'liveness',
        message: livenessMessage(cluster),
      });
    }
  } catch (error) {
    if (!(error instanceof ReplicaCrash)) throw error;
    Object.assign(verdict, { status: 'crash', checker: 'replica_crash', message: error.message });
  }
  return {
    seed: options.seed,
    ...verdict,
    tick: cluster.now,
    traceHash: cluster.trace.digest(),
    ticks: cluster.now,
    reproduce: reproduceCommand(options),
    stats: runStats(cluster, linearizability),
  };
}

/** Runs both phases; returns whether the liveness phase settled. Stops at a violation. */
function runPhases(cluster: Cluster, options: RunOptions): boolean {
  for (let t = 0; t < options.ticks; t++) {
    cluster.tick();
    if (cluster.checker.violation !== null) return false;
  }
  cluster.heal();
  const bound = options.livenessTicksMax ?? defaultLivenessTicksMax;
  for (let t = 0; t < bound; t++) {
    cluster.tick();
    if (cluster.checker.violation !== null) return false;
    if (cluster.settled()) return true;
  }
  return false;
}

function finalChecks(cluster: Cluster): LinearizabilityReport | null {
  const checker = cluster.checker;
  if (checker.violation !== null) return null;
  checkFinalStates(
    cluster.nodes,
    cluster.clients.map((c) => c.id),
    checker,
  );
  checkAckedWrites(cluster.nodes, cluster.workload, checker);
  checkStaleReads(cluster.nodes, cluster.workload, checker);
  return checkClientHistory(cluster.workload, checker);
}

function livenessMessage(cluster: Cluster): string {
  const busy = cluster.clients.filter((c) => !c.idle).length;
  const commits = cluster.nodes
    .map((n) =>
      n.replica === null
        ? `r${n.index}:down`
        : `r${n.index}:${n.replica.status}@${n.replica.commitMin}/${n.replica.op}`,
    )
    .join(' ');
  return (
    `not settled after the liveness phase: ${busy} client(s) still waiting; committed op ` +
    `${cluster.checker.committedOpMax}; replicas ${commits}`
  );
}

function runStats(cluster: Cluster, linearizability: LinearizabilityReport | null): RunStats {
  const history = cluster.workload.history;
  return {
    clients: cluster.clients.length,
    operations: history.length,
    completed: history.filter((op) => op.returnTime !== Infinity).length,
    commits: Math.max(0, cluster.checker.committedOpMax),
    crashes: cluster.nodes.reduce((sum, n) => sum + n.stats.crashes, 0),
    packets: cluster.network.stats.sent,
    dropped: cluster.network.stats.dropped,
    partitions: cluster.network.stats.partitions,
    corruptions: cluster.nodes.reduce((sum, n) => sum + n.storage.stats.corruptions, 0),
    corruptedMessages: cluster.network.stats.corrupted,
    readFaults: cluster.nodes.reduce((sum, n) => sum + n.storage.stats.readFaults, 0),
    events: Object.fromEntries([...cluster.eventCounts].sort((a, b) => (a[0] < b[0] ? -1 : 1))),
    linearizability,
  };
}
