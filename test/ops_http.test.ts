// The ops HTTP surface of a running server (DESIGN §6): health, status and the Prometheus
// metrics, checked against what the test itself did through the SDK.

import { strict as assert } from 'node:assert';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { KmbError, errorCodes } from '../src/client/client.js';
import { Harness, fetchOps, parseMetrics, sampleValue } from './harness.js';
import type { Sample, ServerProcess } from './harness.js';
import { journalDir, journalRecordBytes, segmentFiles } from './journal_files.js';

const requiredMetrics = [
  'kmb_log_entries_total',
  'kmb_log_bytes_total',
  'kmb_log_size_bytes',
  'kmb_write_duration_seconds_count',
  'kmb_write_duration_seconds_sum',
  'kmb_write_duration_seconds_bucket',
  'kmb_requests_total',
  'kmb_requests_in_flight',
  'kmb_active_tenants',
  'kmb_tenant_log_entries_total',
];

async function metrics(server: ServerProcess): Promise<Sample[]> {
  const response = await fetchOps(server, '/metrics');
  assert.equal(response.status, 200);
  assert.match(response.contentType, /^text\/plain/);
  return parseMetrics(response.text);
}

async function statusJson(server: ServerProcess): Promise<Record<string, unknown>> {
  const response = await fetchOps(server, '/status');
  assert.equal(response.status, 200);
  assert.match(response.contentType, /json/);
  return JSON.parse(response.text) as Record<string, unknown>;
}

/** A metric's value with node_id="0" and the given labels; fails when the series is absent. */
function value(samples: readonly Sample[], name: string, labels: Record<string, string> = {}) {
  const found = sampleValue(samples, name, { node_id: '0', ...labels });
  assert.ok(found !== undefined, `${name}${JSON.stringify(labels)} is exported`);
  return found;
}

async function journalSizeBytes(dataDir: string): Promise<number> {
  let total = 0;
  for (const name of await segmentFiles(dataDir)) {
    total += (await stat(join(journalDir(dataDir), name))).size;
  }
  return total;
}

test('health, status and metrics report what the node did', async (t) => {
  // Proves the ops endpoints: /health/live and /health/ready answer 200 once the node logged
  // "Node ready"; /status is JSON with node_id, status, view, commit_number, op_number,
  // is_leader, cluster_size, healthy_replicas, and its op counts move by the writes made; every
  // kmb_* metric named by the monitoring spec is exported with node_id="0", and the counters rise
  // by exactly what the test did: 14 write requests (1 session registration, 2 tenants,
  // 2 streams, 8 appends of which one was rejected by the kernel), 7 + 3 events in two tenants,
  // 2 queries; kmb_log_size_bytes equals the bytes of the journal's records, those plus
  // kmb_log_free_space_bytes its size on disk, and kmb_log_bytes_total grew
  // by as much as the journal did.
  const h = new Harness(t);
  const dataDir = await h.tempDir();
  const server = await h.startServer({ dataDir });

  const live = await fetchOps(server, '/health/live');
  assert.equal(live.status, 200, live.text);
  const ready = await fetchOps(server, '/health/ready');
  assert.equal(ready.status, 200, ready.text);

  const statusBefore = await statusJson(server);
  assert.equal(statusBefore['node_id'], 0);
  assert.equal(statusBefore['status'], 'normal');
  assert.equal(typeof statusBefore['view'], 'number');
  assert.equal(statusBefore['is_leader'], true);
  assert.equal(statusBefore['cluster_size'], 1);
  assert.equal(statusBefore['healthy_replicas'], 1);
  const opBefore = Number(statusBefore['op_number']);
  assert.equal(statusBefore['commit_number'], opBefore);

  const before = await metrics(server);
  const sizeBefore = value(before, 'kmb_log_size_bytes');
  assert.equal(sizeBefore, await journalRecordBytes(dataDir));

  const db = await h.connect({ addresses: [server.address] });
  const alpha = await db.createTenant('alpha');
  const beta = await db.createTenant('beta');
  const alphaStream = await db.createStream({ tenantId: alpha.tenantId, name: 'a' });
  const betaStream = await db.createStream({ tenantId: beta.tenantId, name: 'b' });
  for (let index = 0; index < 7; index++) {
    await db.append({
      tenantId: alpha.tenantId,
      streamId: alphaStream.streamId,
      events: [`a${index}`],
    });
  }
  await db.append({
    tenantId: beta.tenantId,
    streamId: betaStream.streamId,
    events: ['b0', 'b1', 'b2'],
  });
  await assert.rejects(
    db.append({
      tenantId: beta.tenantId,
      streamId: betaStream.streamId,
      events: ['x'],
      expectedOffset: 0,
    }),
    (error: unknown) => error instanceof KmbError && error.code === errorCodes.offset_mismatch,
  );
  await db.read({ tenantId: alpha.tenantId, streamId: alphaStream.streamId });
  await db.listTenants();
  const writes = 1 + 2 + 2 + 7 + 1 + 1;

  const after = await metrics(server);
  const delta = (name: string, labels: Record<string, string> = {}) =>
    value(after, name, labels) - (sampleValue(before, name, { node_id: '0', ...labels }) ?? 0);
  for (const name of requiredMetrics) {
    const found = after.some((sample) => sample.name === name && sample.labels['node_id'] === '0');
    assert.ok(found, `${name} with node_id="0" is exported`);
  }
  for (const sample of after.filter((s) => s.name.startsWith('kmb_'))) {
    assert.equal(sample.labels['node_id'], '0', `${sample.name} carries node_id="0"`);
  }
  assert.equal(
    value(after, 'kmb_tenant_log_entries_total', { tenant_id: String(alpha.tenantId) }),
    7,
  );
  assert.equal(
    value(after, 'kmb_tenant_log_entries_total', { tenant_id: String(beta.tenantId) }),
    3,
  );
  assert.equal(delta('kmb_log_entries_total'), writes);
  assert.equal(delta('kmb_write_duration_seconds_count'), writes);
  assert.equal(delta('kmb_requests_total', { method: 'register', status: 'ok' }), 1);
  assert.equal(delta('kmb_requests_total', { method: 'create_tenant', status: 'ok' }), 2);
  assert.equal(delta('kmb_requests_total', { method: 'create_stream', status: 'ok' }), 2);
  assert.equal(delta('kmb_requests_total', { method: 'append', status: 'ok' }), 8);
  assert.equal(delta('kmb_requests_total', { method: 'append', status: 'error' }), 1);
  assert.equal(delta('kmb_requests_total', { method: 'read', status: 'ok' }), 1);
  assert.equal(delta('kmb_requests_total', { method: 'list_tenants', status: 'ok' }), 1);
  assert.equal(value(after, 'kmb_requests_in_flight'), 0);
  assert.equal(value(after, 'kmb_active_tenants'), 2);
  const sizeAfter = value(after, 'kmb_log_size_bytes');
  assert.equal(sizeAfter, await journalRecordBytes(dataDir));
  // The zeros laid down after the records (in the background, after a write): on disk, the
  // journal is its records plus that free space.
  let free = value(after, 'kmb_log_free_space_bytes');
  for (let tries = 0; free === 0 && tries < 50; tries++) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    free = value(await metrics(server), 'kmb_log_free_space_bytes');
  }
  assert.ok(free > 0, 'the journal laid free space down');
  assert.equal(sizeAfter + free, await journalSizeBytes(dataDir));
  assert.ok(sizeAfter > sizeBefore);
  assert.equal(delta('kmb_log_bytes_total'), sizeAfter - sizeBefore);

  const statusAfter = await statusJson(server);
  assert.equal(statusAfter['op_number'], opBefore + writes);
  assert.equal(statusAfter['commit_number'], opBefore + writes);
  assert.equal(statusAfter['is_leader'], true);
});

test('the /metrics exposition is well-formed and /health/ready is JSON', async (t) => {
  // Proves the exposition is well-formed for a scraper: every non-comment line is a sample of the
  // text format (the harness parser throws otherwise), every family has # HELP and # TYPE, and
  // /health/ready is JSON naming its status.
  const h = new Harness(t);
  const server = await h.startServer({ dataDir: await h.tempDir() });
  const response = await fetchOps(server, '/metrics');
  const samples = parseMetrics(response.text);
  const kmb = samples.filter((sample) => sample.name.startsWith('kmb_'));
  assert.ok(kmb.length > 0);
  for (const sample of kmb) assert.equal(sample.labels['node_id'], '0', sample.name);
  const families = new Set(kmb.map((sample) => sample.name.replace(/_(bucket|sum|count)$/, '')));
  for (const family of families) {
    assert.match(response.text, new RegExp(`^# HELP ${family} `, 'm'), family);
    assert.match(response.text, new RegExp(`^# TYPE ${family} `, 'm'), family);
  }
  const ready = await fetchOps(server, '/health/ready');
  assert.deepEqual((JSON.parse(ready.text) as Record<string, unknown>)['status'], 'ready');
});

test('/metrics/compat serves the spec names promtool rejects, from one instrument', async (t) => {
  // Proves the second exposition of the naming decision: /metrics/compat answers 200 in the
  // Prometheus text format with exactly the spec's original names of the mapped entries (ms
  // histograms with the spec's ms buckets, *_count and *_per_sec gauges), none of which is on
  // /metrics; after writes its vsr_client_latency_ms count equals /metrics'
  // vsr_client_latency_seconds count (one instrument), and vsr_* samples carry replica_id.
  const h = new Harness(t);
  const server = await h.startServer({ dataDir: await h.tempDir() });
  const db = await h.connect({ addresses: [server.address] });
  await db.createTenant('compat');
  const compat = await fetchOps(server, '/metrics/compat');
  assert.equal(compat.status, 200, compat.text);
  assert.match(compat.contentType, /^text\/plain/);
  const main = await fetchOps(server, '/metrics');
  const declared = (text: string) => [...text.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]);
  const names = declared(compat.text);
  for (const name of [
    'vsr_prepare_latency_ms',
    'vsr_log_entry_count',
    'kimberlite_replication_lag_ms',
  ]) {
    assert.ok(names.includes(name), `${name} on /metrics/compat`);
  }
  const onMain = new Set(declared(main.text));
  for (const name of names) assert.ok(!onMain.has(name ?? ''), `${String(name)} only on compat`);
  const buckets = [...compat.text.matchAll(/^vsr_client_latency_ms_bucket\{le="([^"]+)"/gm)];
  assert.deepEqual(
    buckets.map((m) => m[1]),
    ['1', '5', '10', '25', '50', '100', '250', '500', '1000', '+Inf'],
  );
  const count = (text: string, name: string) =>
    sampleValue(parseMetrics(text), name, { replica_id: '0' });
  const writes = count(compat.text, 'vsr_client_latency_ms_count');
  assert.ok(writes !== undefined && writes >= 2, `client latency count ${String(writes)}`);
  const again = await fetchOps(server, '/metrics');
  assert.equal(count(again.text, 'vsr_client_latency_seconds_count'), writes);
});
