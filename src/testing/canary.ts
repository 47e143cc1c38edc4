// Canary runs: proof that the checkers bite. Each canary is a known bug the replica can switch
// on (ReplicaOptions.canary). For each, seeds are run under configurations that give the bug
// a chance to matter, until a run fails with a safety violation or a replica crash that the
// same seed and configuration WITHOUT the canary does not have (so the failure is the
// canary's, not one the replica has anyway).
//
// Whether a canary exists is judged by behaviour, not by its name: if no run with the canary
// ever differs from the run without it (same trace hash), the option had no effect — the
// replica does not implement it, or its code path was never reached — and the canary is
// reported "not available" (judged after availabilityProbeRunsMax runs, or all of them if
// fewer; once a change is seen, every later run counts it only when it also fails, so the
// count is a lower bound). Nothing is faked: a canary is "caught" only by a checker failing
// (a safety checker preferred; a replica crash — an assertion or exception inside the replica —
// is accepted when no safety checker catches it within checkerSearchSeedsMax more seeds).

import { formatFaults, parseFaults } from './fault_plan.js';
import type { FaultClass } from './fault_plan.js';
import { canaryNames } from './replica_adapter.js';
import type { CanaryName } from './replica_adapter.js';
import { reproduceCommand, runSeed } from './simulator.js';
import type { RunOptions, RunResult } from './simulator.js';
import type { CheckerName } from './checkers.js';

export interface CanaryConfig {
  readonly replicaCount: number;
  readonly faults: ReadonlySet<FaultClass>;
  readonly ticks: number;
}

function config(replicaCount: number, faults: string, ticks: number): CanaryConfig {
  const parsed = parseFaults(faults);
  if (typeof parsed === 'string') throw new Error(parsed);
  return { replicaCount, faults: parsed, ticks };
}

/** Where each canary can show itself; tried in order, seed after seed. */
export const canaryConfigs: Record<CanaryName, readonly CanaryConfig[]> = {
  ack_before_fsync: [
    config(1, 'none', 400),
    config(3, 'none', 400),
    config(3, 'storage,crash', 600),
  ],
  commit_without_quorum: [
    config(3, 'none', 400),
    config(5, 'client_network', 400),
    config(3, 'network', 600),
  ],
  adopt_wrong_log: [
    config(3, 'network,crash', 800),
    config(5, 'network,crash', 800),
    config(3, 'all', 800),
  ],
  skip_repair_checksum: [
    config(3, 'network', 800),
    config(3, 'network,storage,crash', 800),
    config(5, 'all', 800),
  ],
  no_duplicate_detection: [config(1, 'client_network', 600), config(3, 'client_network', 600)],
  trust_peer_numbers: [
    config(3, 'forge', 600),
    config(3, 'network,crash,forge', 800),
    config(5, 'network,crash,forge', 800),
  ],
};

export type CanaryStatus = 'caught' | 'not_caught' | 'not_available';

export interface CanaryOutcome {
  readonly canary: CanaryName;
  readonly status: CanaryStatus;
  readonly checker: CheckerName | null;
  readonly seed: number | null;
  readonly message: string;
  readonly reproduce: string | null;
  readonly runs: number;
  /** Runs whose trace differed from the same run without the canary. */
  readonly behaviourChanged: number;
}

export interface CanaryRunOptions {
  readonly seedStart: number;
  readonly seedCount: number;
  /** Seeds tried for a safety checker after a catch by a replica crash (default 10). */
  readonly checkerSearchSeedsMax?: number;
  /** Called after each run, for progress output. */
  readonly onRun?: (canary: CanaryName, result: RunResult) => void;
}

function caughtBy(result: RunResult): boolean {
  return result.status === 'safety' || result.status === 'crash';
}

/** Runs without any behaviour change after which a canary is judged not available. */
export const availabilityProbeRunsMax = 60;

/**
 * After a canary is caught only by a replica crash (an assertion or exception inside the
 * replica), this many more seeds are tried (by default) for a catch by a safety checker, which
 * is preferred: the point of a canary is to show the checkers bite.
 */
export const checkerSearchSeedsMax = 10;

function caughtOutcome(canary: CanaryName, base: RunOptions, result: RunResult): CanaryOutcome {
  return {
    canary,
    status: 'caught',
    checker: result.checker,
    seed: base.seed,
    message: result.message,
    reproduce: reproduceCommand({ ...base, canary }),
    runs: 0,
    behaviourChanged: 0,
  };
}

export function runCanary(canary: CanaryName, options: CanaryRunOptions): CanaryOutcome {
  let runs = 0;
  let behaviourChanged = 0;
  let byCrash: { outcome: CanaryOutcome; index: number } | null = null;
  const done = (outcome: CanaryOutcome): CanaryOutcome => ({ ...outcome, runs, behaviourChanged });
  for (let i = 0; i < options.seedCount; i++) {
    if (behaviourChanged === 0 && runs >= availabilityProbeRunsMax) break;
    const searchMax = options.checkerSearchSeedsMax ?? checkerSearchSeedsMax;
    if (byCrash !== null && i - byCrash.index > searchMax) break;
    for (const cfg of canaryConfigs[canary]) {
      const base: RunOptions = { seed: options.seedStart + i, ...cfg };
      const withCanary = runSeed({ ...base, canary });
      runs += 1;
      options.onRun?.(canary, withCanary);
      // The baseline is needed to see a behaviour change, and to own a failure.
      if (behaviourChanged > 0 && !caughtBy(withCanary)) continue;
      const baseline = runSeed(base);
      if (withCanary.traceHash === baseline.traceHash) continue;
      behaviourChanged += 1;
      if (!caughtBy(withCanary) || caughtBy(baseline)) continue;
      const outcome = caughtOutcome(canary, base, withCanary);
      if (withCanary.status === 'safety') return done(outcome);
      byCrash ??= { outcome, index: i };
    }
  }
  if (byCrash !== null) return done(byCrash.outcome);
  const configs = canaryConfigs[canary].map(
    (c) => `${c.replicaCount} replica(s), faults ${formatFaults(c.faults)}`,
  );
  const message =
    behaviourChanged === 0
      ? `the option changed nothing in ${runs} runs (${configs.join('; ')}): the replica ` +
        'does not implement it, or never reached its code path'
      : `the replica behaved differently in at least ${behaviourChanged} of ${runs} runs, but no ` +
        'checker failed';
  return {
    canary,
    status: behaviourChanged === 0 ? 'not_available' : 'not_caught',
    checker: null,
    seed: null,
    message,
    reproduce: null,
    runs,
    behaviourChanged,
  };
}

export function runAllCanaries(
  options: CanaryRunOptions,
  only: readonly CanaryName[] = canaryNames,
): CanaryOutcome[] {
  return only.map((canary) => runCanary(canary, options));
}
