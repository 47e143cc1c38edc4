// Proves that Metrics exposes every kmb_* instrument of the monitoring spec with the right type
// and labels, that every series carries node_id, that cells move the rendered values (and are
// not double-counted across scrapes), that kmb_consensus_leader follows its documented encoding,
// and that the whole exposition, process metrics included, passes `promtool check metrics`
// (skipped, with the reason printed, where promtool is not installed).

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { errorCodes } from '../core/errors.js';
import { Metrics, requestMethods, requestStatuses } from './metrics.js';
import { droppedProcessMetricNames } from './process_metrics.js';

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

test('every sample carries the node_id label', async () => {
  const metrics = new Metrics({ nodeId: 3 });
  metrics.tenantLogEntriesTotal(1).inc();
  const text = await metrics.render();
  const samples = text.split('\n').filter((line) => line !== '' && !line.startsWith('#'));
  assert.ok(samples.length > 50);
  for (const line of samples) {
    assert.match(line, /[{,]node_id="3"[,}]/, line);
  }
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
  const check = spawnSync('promtool', ['check', 'metrics'], {
    input: await metrics.render(),
    encoding: 'utf8',
  });
  assert.equal(check.status, 0, `promtool said:\n${check.stdout}${check.stderr}`);
});
