// Proves that kmb_projection_applied_position and kmb_projection_lag report the views for real:
// one series per view (label `view`) with its own position and lag, and the series without a
// `view` label following the slowest view (lowest position, largest lag) as the views and the
// known commit number move, read at scrape time; that /status's view list says the same; and
// that the exposition passes `promtool check metrics` (skipped, with the reason printed, where
// promtool is absent). Before any binding, the unlabelled series exist at 0; binding a new host
// to the same Metrics (a node started anew in the same process) rebinds the same series.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { asOp, asTimestampUs } from '../core/types.js';
import { Metrics } from '../observability/metrics.js';
import { StreamIndex } from '../views/stream_index.js';
import type { CommittedOp, View } from '../views/view.js';
import { ViewHost } from '../views/view_host.js';
import { bindViewMetrics, viewStatus } from './view_metrics.js';

/** A view that only keeps its position (it may start ahead, as if it had loaded a checkpoint). */
class PositionView implements View {
  constructor(
    readonly name: string,
    public appliedOp: number,
  ) {}

  apply(op: CommittedOp): void {
    this.appliedOp = op.op;
  }

  reset(): void {
    this.appliedOp = 0;
  }

  digest(): Uint8Array {
    return new Uint8Array(0);
  }
}

function op(n: number): CommittedOp {
  return { op: asOp(n), timestampUs: asTimestampUs(n), applied: [] };
}

/** The samples of one metric: label text (labels sorted, node_id left out) → value. */
function series(text: string, name: string): Map<string, number> {
  const found = new Map<string, number>();
  for (const line of text.split('\n')) {
    const match = /^(\w+)\{([^}]*)\} (\S+)$/.exec(line);
    if (match === null || match[1] !== name) continue;
    const labels = (match[2] ?? '')
      .split(',')
      .filter((label) => label !== '' && !label.startsWith('node_id='))
      .sort()
      .join(',');
    found.set(labels, Number(match[3]));
  }
  return found;
}

function promtool(text: string): boolean {
  const probe = spawnSync('promtool', ['--version'], { encoding: 'utf8' });
  if (probe.error !== undefined || probe.status !== 0) return false;
  const check = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
  assert.equal(check.status, 0, `promtool said:\n${check.stdout}${check.stderr}`);
  return true;
}

test('projection metrics: one series per view, the unlabelled one the slowest', async (t) => {
  const metrics = new Metrics({ nodeId: 0, processMetrics: false });
  const unbound = await metrics.render();
  assert.deepEqual([...series(unbound, 'kmb_projection_applied_position')], [['', 0]]);
  assert.deepEqual([...series(unbound, 'kmb_projection_lag')], [['', 0]]);

  const index = new StreamIndex();
  const ahead = new PositionView('ahead', 6);
  const host = new ViewHost([index, ahead]);
  let commitKnown = 9;
  bindViewMetrics(metrics, host, () => commitKnown);
  for (let n = 1; n <= 4; n++) host.executed(op(n));

  let text = await metrics.render();
  assert.deepEqual(
    series(text, 'kmb_projection_applied_position'),
    new Map([
      ['', 4],
      ['view="stream_index"', 4],
      ['view="ahead"', 6],
    ]),
  );
  assert.deepEqual(
    series(text, 'kmb_projection_lag'),
    new Map([
      ['', 5],
      ['view="stream_index"', 5],
      ['view="ahead"', 3],
    ]),
  );
  assert.deepEqual(viewStatus(host, commitKnown), [
    { name: 'stream_index', applied_op: 4, lag_ops: 5 },
    { name: 'ahead', applied_op: 6, lag_ops: 3 },
  ]);

  // Both views move on to op 10; then one is reset (as for a rebuild) and is the slowest.
  for (let n = 5; n <= 10; n++) host.executed(op(n));
  commitKnown = 12;
  ahead.reset();
  text = await metrics.render();
  assert.equal(series(text, 'kmb_projection_applied_position').get(''), 0, 'slowest: reset view');
  assert.equal(series(text, 'kmb_projection_lag').get(''), 12);
  assert.equal(series(text, 'kmb_projection_lag').get('view="stream_index"'), 2);
  if (!promtool(text)) t.diagnostic('promtool not installed: lint check skipped');

  const restarted = new ViewHost([new StreamIndex(), new PositionView('ahead', 2)]);
  bindViewMetrics(metrics, restarted, () => 3);
  text = await metrics.render();
  assert.deepEqual(
    series(text, 'kmb_projection_lag'),
    new Map([
      ['', 3],
      ['view="stream_index"', 3],
      ['view="ahead"', 1],
    ]),
  );
});
