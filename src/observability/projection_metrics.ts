// The instruments of the derived views (src/views/): kmb_projection_applied_position, the last
// op a view applied, and kmb_projection_lag, the ops known committed that it has not applied yet.
// Each has one series without a `view` label, the slowest view (lowest position, largest lag:
// what the spec's alerts mean by "the projection"), and one series per view with label
// `view="<name>"`. Values are read at scrape time from functions bound by the node
// (node/view_metrics.ts), so applying an op costs the metrics nothing.
//
// Invariants: the slowest series exist from creation (0 until bound), so the spec's names are
// always exposed; a view's series are created once per name (asking again returns them, to be
// bound again: a node started anew in the same process with the same Metrics), at most
// projectionViewCountMax names.

import type { Registry } from 'prom-client';
import { assert } from '../core/assert.js';
import { GaugeFamily } from './metric_cells.js';
import type { ReadCell } from './metric_cells.js';

/** Views with series of their own (the view host holds at most as many). */
export const projectionViewCountMax = 16;

export interface ProjectionSeries {
  /** kmb_projection_applied_position: the last op applied. */
  readonly appliedPosition: ReadCell;
  /** kmb_projection_lag: ops known committed minus the last op applied. */
  readonly lag: ReadCell;
}

export class ProjectionInstruments {
  /** The slowest view: the series without a `view` label. */
  readonly slowest: ProjectionSeries;
  private readonly appliedFamily: GaugeFamily;
  private readonly lagFamily: GaugeFamily;
  private readonly views = new Map<string, ProjectionSeries>();

  constructor(registry: Registry) {
    const labelNames = ['view'];
    this.appliedFamily = new GaugeFamily({
      registry,
      name: 'kmb_projection_applied_position',
      help:
        'Last log position (op) applied to the derived views: without a view label the ' +
        'slowest view, with view="<name>" that view.',
      labelNames,
    });
    this.lagFamily = new GaugeFamily({
      registry,
      name: 'kmb_projection_lag',
      help:
        'Log positions known committed but not yet applied (head - applied): without a view ' +
        'label the slowest view, with view="<name>" that view.',
      labelNames,
    });
    this.slowest = { appliedPosition: this.appliedFamily.reader(), lag: this.lagFamily.reader() };
  }

  /** The series of one view, labelled view=`name`; created on the first call for the name. */
  forView(name: string): ProjectionSeries {
    assert(name.length > 0, 'a view has a name');
    const known = this.views.get(name);
    if (known !== undefined) return known;
    assert(this.views.size < projectionViewCountMax, 'at most projectionViewCountMax views');
    const series = {
      appliedPosition: this.appliedFamily.reader({ view: name }),
      lag: this.lagFamily.reader({ view: name }),
    };
    this.views.set(name, series);
    return series;
  }
}
