// How far the derived views are: kmb_projection_applied_position and kmb_projection_lag
// (observability/projection_metrics.ts) bound to a view host, and the same facts for /status.
// A view's lag is the highest op this replica knows committed (the replica's commitMax) minus
// the view's applied position; the series without a `view` label report the slowest view (the
// lowest position, so the largest lag). Values are read when somebody scrapes, never per op.
//
// Invariants: binding again (a node started anew with the same Metrics) rebinds the same series;
// a lag is never negative (a view applies only committed ops; during start-up the replica's
// commit number can trail the journal it replays, and a lag below 0 would be noise, not news).

import type { Metrics } from '../observability/metrics.js';
import type { ViewHost } from '../views/view_host.js';

export interface ViewStatus {
  readonly name: string;
  readonly applied_op: number;
  readonly lag_ops: number;
}

function lagOf(commitKnown: number, appliedOp: number): number {
  return Math.max(0, commitKnown - appliedOp);
}

/**
 * Binds the projection gauges to `host`: the slowest view without a label, each view with
 * label `view`. `commitKnown` is the highest op known committed (replica.commitMax).
 */
export function bindViewMetrics(metrics: Metrics, host: ViewHost, commitKnown: () => number): void {
  const { projection } = metrics;
  const slowestOp = (): number => host.slowest()?.appliedOp ?? commitKnown();
  projection.slowest.appliedPosition.bind(() => host.slowest()?.appliedOp ?? 0);
  projection.slowest.lag.bind(() => lagOf(commitKnown(), slowestOp()));
  for (const view of host.views) {
    const series = projection.forView(view.name);
    series.appliedPosition.bind(() => view.appliedOp);
    series.lag.bind(() => lagOf(commitKnown(), view.appliedOp));
  }
}

/** Each view's position and lag, for /status (`commitKnown`: replica.commitMax). */
export function viewStatus(host: ViewHost, commitKnown: number): ViewStatus[] {
  return host.positions().map((position) => ({
    name: position.name,
    applied_op: position.appliedOp,
    lag_ops: lagOf(commitKnown, position.appliedOp),
  }));
}
