// Proves that Metrics exposes every kmb_* instrument of the monitoring spec with the right type
// and labels, that every metric name the spec documents 000-003 mention (read from the documents)
// is declared on /metrics or, for the names promtool rejects, on /metrics/compat; that kmb_* and
// kimberlite_* series carry node_id and vsr_* series replica_id (never node_id); that cells move
// the rendered values (and are not double-counted across scrapes); that names documented twice
// read one cell (aliases, sums, ms renderings of second histograms); that kmb_consensus_leader
// follows its documented encoding; and that the whole exposition, process metrics included,
// passes `promtool check metrics` (skipped, with the reason printed, where promtool is absent);
// and that docs/metrics.md names every metric both expositions declare.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { readFileSync } from 'node:fs';
import { errorCodes } from '../core/errors.js';
import { compatNames } from './compat_metrics.js';
import { Metrics, requestMethods, requestStatuses } from './metrics.js';
import { droppedProcessMetricNames } from './process_metrics.js';
import {
  declaredTypes,
  missingSpecNames,
  keptSpecNames,
  specDir,
  specDocumentNames,
  specMetricNames,
} from './spec_names.test-support.js';

const expectedTypes: Readonly<Record<string, string>> = {
  kmb_log_entries_total: 'counter',
  kmb_log_bytes_total: 'counter',
  kmb_log_size_bytes: 'gauge',
  kmb_write_duration_seconds: 'histogram',
  kmb_query_duration_seconds: 'histogram',
  kmb_requests_total: 'counter',
  kmb_requests_in_flight: 'gauge',
  kmb_active_tenants: 'gauge',
  kmb_tenant_log_entries_total: 'counter',
  kmb_consensus_commits_total: 'counter',
  kmb_consensus_view: 'gauge',
  kmb_consensus_leader: 'gauge',
  kmb_consensus_is_leader: 'gauge',
  kmb_consensus_view_changes_total: 'counter',
  kmb_projection_applied_position: 'gauge',
  kmb_projection_lag: 'gauge',
  kmb_errors_total: 'counter',
};

function types(text: string): Map<string, string> {
  const result = new Map<string, string>();
  for (const match of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    result.set(match[1] ?? '', match[2] ?? '');
  }
  return result;
}

/** The value of the sample whose name and label text match exactly, e.g. `{node_id="0"}`. */
function sample(text: string, name: string, labels: string): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith(`${name}${labels} `))
      return Number(line.slice(name.length + labels.length));
  }
  return undefined;
}

test('every kmb_* metric is present with its type', async () => {
  const text = await new Metrics({ nodeId: 0, processMetrics: false }).render();
  const found = types(text);
  for (const [name, type] of Object.entries(expectedTypes)) {
    assert.equal(found.get(name), type, `${name} should be a ${type}`);
  }
});

test('kmb_* and kimberlite_* samples carry node_id, vsr_* samples replica_id only', async () => {
  const metrics = new Metrics({ nodeId: 3 });
  metrics.tenantLogEntriesTotal(1).inc();
  metrics.replicationLagSeconds(1).bind(() => 0.5);
  for (const text of [await metrics.render(), await metrics.renderCompat()]) {
    const samples = text.split('\n').filter((line) => line !== '' && !line.startsWith('#'));
    assert.ok(samples.length > 10);
    for (const line of samples) {
      if (line.startsWith('vsr_')) {
        assert.match(line, /[{,]replica_id="3"[,}]/, line);
        assert.doesNotMatch(line, /node_id=/, line);
      } else {
        assert.match(line, /[{,]node_id="3"[,}]/, line);
      }
    }
  }
});

test('the kept list of spec metric names equals what the spec documents yield', (t) => {
  // Proves spec_metric_names.txt (what a clean clone checks against) has not drifted from the
  // documents: where they are present, the names they yield are exactly the kept ones.
  const fromDocuments = specDocumentNames();
  if (fromDocuments === null) {
    t.skip(`spec documents not found in ${specDir()}; the kept list stands in for them`);
    return;
  }
  assert.deepEqual(keptSpecNames(), fromDocuments);
});

test('every metric name of spec documents 000-003 is declared where names.md says', async () => {
  const names = specMetricNames();
  assert.ok(names.length > 70, `only ${names.length} names found`);
  const metrics = new Metrics({ nodeId: 0, processMetrics: false });
  const missing = missingSpecNames(names, await metrics.render(), await metrics.renderCompat());
  assert.deepEqual(missing, []);
  const compat = declaredTypes(await metrics.renderCompat());
  assert.deepEqual([...compat.keys()].sort(), Object.values(compatNames).sort());
});

test('names documented twice read one instrument', async () => {
  const metrics = new Metrics({ nodeId: 0, processMetrics: false });
  metrics.consensusCommitsTotal.inc(4);
  metrics.logBytesTotal.inc(100);
  metrics.viewChangesTotal('primary_timeout').inc();
  metrics.viewChangesTotal('later_view').inc(2);
  metrics.vsr.checksumFailures.log.inc();
  metrics.vsr.checksumFailures.superblock.inc();
  metrics.writeDurationSeconds.observe(0.004);
  metrics.writeDurationSeconds.observe(0.3);
  const text = await metrics.render();
  const node = '{node_id="0"}';
  const vsr = '{replica_id="0"}';
  assert.equal(sample(text, 'kimberlite_consensus_commits_total', node), 4);
  assert.equal(sample(text, 'vsr_bytes_written_total', vsr), 100);
  assert.equal(sample(text, 'kmb_consensus_view_changes_total', node), 3);
  assert.equal(sample(text, 'kimberlite_consensus_view_changes_total', node), 3);
  assert.equal(sample(text, 'kmb_checksum_failures_total', node), 2);
  // One cell, two bucket layouts: each reports exact cumulative counts at its own bounds.
  assert.equal(sample(text, 'kmb_write_duration_seconds_bucket', '{le="0.005",node_id="0"}'), 1);
  assert.equal(sample(text, 'vsr_client_latency_seconds_bucket', '{le="0.005",replica_id="0"}'), 1);
  assert.equal(sample(text, 'vsr_client_latency_seconds_bucket', '{le="0.25",replica_id="0"}'), 1);
  assert.equal(sample(text, 'vsr_client_latency_seconds_count', vsr), 2);
  const compat = await metrics.renderCompat();
  assert.equal(sample(compat, 'vsr_client_latency_ms_bucket', '{le="5",replica_id="0"}'), 1);
  assert.equal(sample(compat, 'vsr_client_latency_ms_bucket', '{le="500",replica_id="0"}'), 2);
  assert.equal(sample(compat, 'vsr_client_latency_ms_sum', vsr), 304);
});

test('compat renders seconds as the spec ms buckets and values', async () => {
  const metrics = new Metrics({ nodeId: 1, processMetrics: false });
  metrics.vsr.prepareLatency.observe(0.0007);
  metrics.vsr.clockOffsetSeconds.bind(() => -0.012);
  metrics.replicationLagSeconds(2).bind(() => 1.5);
  metrics.clusterReplicas.healthy.bind(() => 2);
  const text = await metrics.render();
  assert.equal(
    sample(text, 'vsr_prepare_latency_seconds_bucket', '{le="0.001",replica_id="1"}'),
    1,
  );
  assert.equal(sample(text, 'vsr_clock_offset_seconds', '{replica_id="1"}'), -0.012);
  const compat = await metrics.renderCompat();
  const buckets = [...compat.matchAll(/^vsr_prepare_latency_ms_bucket\{le="([^"]+)"/gm)];
  assert.deepEqual(
    buckets.map((m) => m[1]),
    ['0.1', '0.5', '1', '2', '5', '10', '25', '50', '100', '+Inf'],
  );
  assert.equal(sample(compat, 'vsr_prepare_latency_ms_bucket', '{le="0.5",replica_id="1"}'), 0);
  assert.equal(sample(compat, 'vsr_prepare_latency_ms_bucket', '{le="1",replica_id="1"}'), 1);
  assert.equal(sample(compat, 'vsr_prepare_latency_ms_sum', '{replica_id="1"}'), 0.7);
  assert.equal(sample(compat, 'vsr_clock_offset_ms', '{replica_id="1"}'), -12);
  const lag = '{replica_id="2",node_id="1"}';
  assert.equal(sample(compat, 'kimberlite_replication_lag_ms', lag), 1500);
  const healthy = '{status="healthy",node_id="1"}';
  assert.equal(sample(compat, 'kimberlite_cluster_replicas_total', healthy), 2);
  assert.equal(sample(text, 'kimberlite_cluster_replicas', healthy), 2);
});

test('the commit latency summary reports quantiles of its window', async () => {
  const metrics = new Metrics({ nodeId: 0, processMetrics: false });
  const name = 'kimberlite_consensus_commit_latency_seconds';
  const q99 = '{quantile="0.99",node_id="0"}';
  assert.ok(Number.isNaN(sample(await metrics.render(), name, q99)));
  for (let index = 1; index <= 100; index++) metrics.commitLatencySummary.observe(index / 1000);
  const text = await metrics.render();
  assert.equal(sample(text, name, '{quantile="0.5",node_id="0"}'), 0.05);
  assert.equal(sample(text, name, q99), 0.099);
  assert.equal(sample(text, `${name}_count`, '{node_id="0"}'), 100);
});

test('features this build does not have (state transfer, reconfiguration, standbys) report zero', async () => {
  const text = await new Metrics({ nodeId: 0, processMetrics: false }).render();
  const vsr = '{replica_id="0"}';
  assert.equal(sample(text, 'vsr_state_transfer_latency_seconds_count', vsr), 0);
  for (const name of ['vsr_reconfig_state', 'vsr_standbys', 'vsr_standbys_healthy']) {
    assert.equal(sample(text, name, vsr), 0, name);
  }
  const version = JSON.parse(readFileSync('package.json', 'utf8')) as { version: string };
  const [major, minor] = version.version.split('.').map(Number);
  assert.equal(sample(text, 'vsr_cluster_version_major', vsr), major);
  assert.equal(sample(text, 'vsr_cluster_version_minor', vsr), minor);
});

test('labelled series exist at zero before their first use', async () => {
  const text = await new Metrics({ nodeId: 0, processMetrics: false }).render();
  for (const method of requestMethods) {
    for (const status of requestStatuses) {
      const labels = `{method="${method}",status="${status}",node_id="0"}`;
      assert.equal(sample(text, 'kmb_requests_total', labels), 0, labels);
    }
  }
  for (const code of Object.values(errorCodes)) {
    assert.equal(sample(text, 'kmb_errors_total', `{code="${code}",node_id="0"}`), 0, code);
  }
});

test('updates move the rendered values and scrapes do not double-count', async () => {
  const metrics = new Metrics({ nodeId: 1, processMetrics: false });
  metrics.logEntriesTotal.inc(3);
  metrics.logBytesTotal.inc(512);
  metrics.logSizeBytes.set(4096);
  metrics.requestsTotal('append', 'ok').inc();
  metrics.requestsTotal('append', 'ok').inc();
  metrics.requestsTotal('read', 'error').inc();
  metrics.requestsInFlight.inc(2);
  metrics.requestsInFlight.dec();
  metrics.tenantLogEntriesTotal(7).inc(5);
  metrics.errorsTotal(errorCodes.not_leader).inc();
  metrics.writeDurationSeconds.observe(0.002);
  const first = await metrics.render();
  metrics.logEntriesTotal.inc(1);
  const text = await metrics.render();
  assert.equal(sample(first, 'kmb_log_entries_total', '{node_id="1"}'), 3);
  assert.equal(sample(text, 'kmb_log_entries_total', '{node_id="1"}'), 4);
  assert.equal(sample(text, 'kmb_log_bytes_total', '{node_id="1"}'), 512);
  assert.equal(sample(text, 'kmb_log_size_bytes', '{node_id="1"}'), 4096);
  const append = '{method="append",status="ok",node_id="1"}';
  assert.equal(sample(text, 'kmb_requests_total', append), 2);
  const readError = '{method="read",status="error",node_id="1"}';
  assert.equal(sample(text, 'kmb_requests_total', readError), 1);
  assert.equal(sample(text, 'kmb_requests_in_flight', '{node_id="1"}'), 1);
  const tenant = '{tenant_id="7",node_id="1"}';
  assert.equal(sample(text, 'kmb_tenant_log_entries_total', tenant), 5);
  const notLeader = '{code="KMB_ERR_NOT_LEADER",node_id="1"}';
  assert.equal(sample(text, 'kmb_errors_total', notLeader), 1);
  const bucket = '{le="0.0025",node_id="1"}';
  assert.equal(sample(text, 'kmb_write_duration_seconds_bucket', bucket), 1);
  assert.equal(sample(text, 'kmb_write_duration_seconds_count', '{node_id="1"}'), 1);
});

test('cached cells are reused, and counters refuse to decrease', () => {
  const metrics = new Metrics({ nodeId: 0, processMetrics: false });
  assert.equal(metrics.requestsTotal('read', 'ok'), metrics.requestsTotal('read', 'ok'));
  assert.equal(metrics.tenantLogEntriesTotal(2), metrics.tenantLogEntriesTotal(2));
  assert.throws(() => metrics.logEntriesTotal.inc(-1), /never decreases/);
});

test('kmb_consensus_leader is leader index + 1, and 0 with no leader', async () => {
  const metrics = new Metrics({ nodeId: 2, processMetrics: false });
  const read = async (name: string): Promise<number | undefined> =>
    sample(await metrics.render(), name, '{node_id="2"}');
  assert.equal(await read('kmb_consensus_leader'), 0);
  metrics.setConsensusLeader(0);
  assert.equal(await read('kmb_consensus_leader'), 1);
  assert.equal(await read('kmb_consensus_is_leader'), 0);
  metrics.setConsensusLeader(2);
  assert.equal(await read('kmb_consensus_leader'), 3);
  assert.equal(await read('kmb_consensus_is_leader'), 1);
  metrics.setConsensusLeader(null);
  assert.equal(await read('kmb_consensus_leader'), 0);
  assert.equal(await read('kmb_consensus_is_leader'), 0);
});

test('process metrics are included, minus the gauges promtool rejects', async () => {
  const metrics = new Metrics({ nodeId: 0 });
  assert.match(metrics.contentType, /^text\/plain; version=0\.0\.4/);
  const found = types(await metrics.render());
  assert.equal(found.get('process_cpu_seconds_total'), 'counter');
  assert.equal(found.get('nodejs_active_handles'), 'gauge');
  for (const name of droppedProcessMetricNames) assert.equal(found.has(name), false, name);
});

test('the exposition passes promtool check metrics', async (t) => {
  const probe = spawnSync('promtool', ['--version'], { encoding: 'utf8' });
  if (probe.error !== undefined || probe.status !== 0) {
    const why = probe.error?.message ?? `promtool --version exited ${String(probe.status)}`;
    t.skip(`promtool not installed: ${why}`);
    return;
  }
  const metrics = new Metrics({ nodeId: 0 });
  metrics.writeDurationSeconds.observe(0.01);
  metrics.tenantLogEntriesTotal(1).inc();
  metrics.setConsensusLeader(0);
  metrics.commitLatencySummary.observe(0.002);
  metrics.replicationLagSeconds(1).bind(() => NaN);
  metrics.vsr.repairEwmaLatency(1).bind(() => 0.001);
  const check = spawnSync('promtool', ['check', 'metrics'], {
    input: await metrics.render(),
    encoding: 'utf8',
  });
  assert.equal(check.status, 0, `promtool said:\n${check.stdout}${check.stderr}`);
});

test('docs/metrics.md documents every name both expositions declare', async () => {
  const doc = readFileSync('docs/metrics.md', 'utf8');
  const metrics = new Metrics({ nodeId: 0, processMetrics: false });
  const names = [
    ...declaredTypes(await metrics.render()).keys(),
    ...declaredTypes(await metrics.renderCompat()).keys(),
  ];
  const missing = names.filter((name) => !doc.includes(`\`${name}\``));
  assert.deepEqual(missing, []);
});
