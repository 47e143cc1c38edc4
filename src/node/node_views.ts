// The views sink: every op the replica executed, in op order, goes to the derived views through
// the view host (views/view_host.ts) — today the stream index, which the query service reads —
// and the kernel's effects of the op update the per-tenant metrics (kmb_log_entries_total by
// tenant, kmb_active_tenants). kmb_projection_applied_position / kmb_projection_lag are bound to
// the host's positions at scrape time (view_metrics.ts).

import type { KernelOutput, State } from '../kernel/kernel.js';
import { activeTenantCount } from '../kernel/kernel.js';
import type { Metrics } from '../observability/metrics.js';
import type { StreamIndex } from '../views/stream_index.js';
import { createViewSet } from '../views/view_set.js';
import { ViewHost } from '../views/view_host.js';
import type { ViewSink } from '../vsr/effect_driver.js';
import type { ExecutedOp } from '../vsr/message.js';
import { bindViewMetrics, viewStatus } from './view_metrics.js';

export interface NodeViewsOptions {
  readonly state: State;
  readonly metrics: Metrics;
  /** The highest op this replica knows is committed (the head the views' lag is measured to). */
  readonly commitKnown: () => number;
}

export class NodeViews implements ViewSink<KernelOutput> {
  /** The stream read index, which the query service reads. */
  readonly streamIndex: StreamIndex;
  readonly host: ViewHost;

  constructor(private readonly options: NodeViewsOptions) {
    const views = createViewSet();
    this.streamIndex = views.streamIndex;
    this.host = new ViewHost(views.all);
    bindViewMetrics(options.metrics, this.host, options.commitKnown);
  }

  executed(op: ExecutedOp<KernelOutput>): void {
    this.host.executed(op);
    const { metrics, state } = this.options;
    for (const applied of op.applied) {
      if (applied.output === null) continue;
      for (const effect of applied.output.effects) {
        if (effect.kind === 'events_appended') {
          metrics.tenantLogEntriesTotal(effect.tenantId).inc(effect.count);
        } else if (effect.kind === 'tenant_created') {
          metrics.activeTenants.set(activeTenantCount(state));
        }
      }
    }
  }

  /** Each view's position and lag, for /status. */
  status(): unknown {
    return viewStatus(this.host, this.options.commitKnown());
  }
}
