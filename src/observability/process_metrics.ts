// The Node.js process metrics (`process_*`, `nodejs_*`) that prom-client collects for us, minus
// the ones that break `promtool check metrics`.
//
// prom-client 15 exports three gauges whose names end in `_total`: nodejs_active_handles_total,
// nodejs_active_requests_total and nodejs_active_resources_total. promtool rejects them
// ("non-counter metrics should not have "_total" suffix"), and the exposition must pass it
// (DESIGN.md §6). We drop them rather than rename them: each one is the sum of a gauge that
// stays, broken down by a `type` label (nodejs_active_handles, nodejs_active_requests,
// nodejs_active_resources), so `sum without (type) (nodejs_active_handles)` gives the same
// number. Everything else prom-client provides passes promtool as it is.

import { collectDefaultMetrics, type Registry } from 'prom-client';

/** Default metric names that promtool rejects and that we therefore never export. */
export const droppedProcessMetricNames: readonly string[] = [
  'nodejs_active_handles_total',
  'nodejs_active_requests_total',
  'nodejs_active_resources_total',
];

/** Registers the process and runtime metrics on `registry`. */
export function registerProcessMetrics(registry: Registry): void {
  collectDefaultMetrics({ register: registry });
  for (const name of droppedProcessMetricNames) {
    registry.removeSingleMetric(name);
  }
}
