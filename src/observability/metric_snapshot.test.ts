// Tests of the push exporters' read of the instruments: the spec's original names and units
// come back from the node's real registries, and the mapping agrees with /metrics/compat's.

import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { compatNames } from './compat_metrics.js';
import { registrySource, specNames, unitOf } from './metric_snapshot.js';
import { Metrics } from './metrics.js';
import { vsrLatencyBucketsMs } from './vsr_metrics.js';

test('the push names are exactly the compat names of the naming decision', () => {
  // Proves there is one naming decision: every /metrics name that /metrics/compat renames is
  // renamed the same way for OTLP and StatsD, and nothing else is renamed.
  const pushed = Object.fromEntries([...specNames].map(([from, to]) => [from, to.name]));
  assert.deepEqual(pushed, compatNames);
});

test("a node's registries read back under the spec's names, ms buckets, units", async () => {
  // Proves the read of the node's own instruments: no lint-clean alias (vsr_*_seconds,
  // vsr_log_entries, ...) leaks into a push export, each spec latency histogram is present as
  // vsr_<kind>_latency_ms with exactly the spec's ms bucket bounds, counters and histograms carry
  // the spec names (kmb_log_entries_total, vsr_operations_total), and units follow suffixes.
  const metrics = new Metrics({ nodeId: 2 });
  const snapshots = await registrySource(() => metrics.registries)();
  const names = new Set(snapshots.map((s) => s.name));
  for (const alias of Object.keys(compatNames)) assert.ok(!names.has(alias), alias);
  for (const original of Object.values(compatNames)) assert.ok(names.has(original), original);
  assert.equal(snapshots.find((s) => s.name === 'kmb_log_entries_total')?.kind, 'counter');
  assert.equal(snapshots.find((s) => s.name === 'vsr_operations_total')?.kind, 'counter');
  const expected: Record<string, readonly number[]> = {
    vsr_prepare_latency_ms: vsrLatencyBucketsMs.prepare,
    vsr_commit_latency_ms: vsrLatencyBucketsMs.commit,
    vsr_client_latency_ms: vsrLatencyBucketsMs.client,
    vsr_view_change_latency_ms: vsrLatencyBucketsMs.viewChange,
    vsr_recovery_latency_ms: vsrLatencyBucketsMs.recovery,
    vsr_repair_latency_ms: vsrLatencyBucketsMs.repair,
  };
  for (const [name, bounds] of Object.entries(expected)) {
    const snapshot = snapshots.find((s) => s.name === name);
    assert.equal(snapshot?.kind, 'histogram', name);
    assert.equal(snapshot.unit, 'ms');
    for (const series of snapshot.histograms) {
      assert.deepEqual(series.bounds, bounds, name);
      assert.equal(series.labels['replica_id'], '2');
      assert.equal(series.bucketCounts.length, bounds.length + 1);
    }
  }
  assert.equal(unitOf('kmb_write_duration_seconds'), 's');
  assert.equal(unitOf('kmb_log_bytes_total'), 'By');
  assert.equal(unitOf('vsr_operations_total'), '1');
});
