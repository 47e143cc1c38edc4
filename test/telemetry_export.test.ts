// Push telemetry from a real kimberlite-server process: OTLP metrics to a loopback OTLP/HTTP
// receiver and StatsD lines to a loopback UDP socket, configured through [telemetry]
// (KMB_TELEMETRY_* variables), checked against the writes the test made and against the node's
// own /metrics.

import { strict as assert } from 'node:assert';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { OtlpReceiver } from '../src/testing/otlp_receiver.js';
import type { MetricPoint } from '../src/testing/otlp_receiver.js';
import { StatsdReceiver } from '../src/testing/statsd_receiver.js';
import { Harness, fetchOps, parseMetrics, sampleValue } from './harness.js';
import type { ServerProcess } from './harness.js';

async function scrape(server: ServerProcess, name: string, labels: Record<string, string>) {
  const response = await fetchOps(server, '/metrics');
  return sampleValue(parseMetrics(response.text), name, labels);
}

/** Makes `appends` appends (plus register, tenant and stream): returns the write requests made. */
async function writeSome(h: Harness, server: ServerProcess, appends: number): Promise<number> {
  const db = await h.connect({ addresses: [server.address] });
  const tenant = await db.createTenant('telemetry');
  const stream = await db.createStream({ tenantId: tenant.tenantId, name: 'events' });
  for (let index = 0; index < appends; index++) {
    await db.append({
      tenantId: tenant.tenantId,
      streamId: stream.streamId,
      events: [`e${index}`],
    });
  }
  await db.close();
  return 1 + 1 + 1 + appends;
}

function latest(receiver: OtlpReceiver, name: string): MetricPoint | undefined {
  return receiver.latestPoints(name)[0];
}

/** A loopback port with nothing listening (bound, then released). */
async function deadPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

test('OTLP metrics and StatsD lines carry spec names and the values of the writes', async (t) => {
  // Proves both pushes from a real server: after 1 register + 1 tenant + 1 stream + 12 appends,
  // OTLP's kmb_log_entries_total (a monotonic cumulative sum, node_id "0") reaches exactly 15;
  // vsr_operations_total{status="success"} and the vsr_prepare_latency_ms histogram (the spec's
  // ms bounds, replica_id "0") equal what /metrics reports for the same instruments; every StatsD
  // line parses as `kmbtest.<name>:<value>|c|g|ms`, the c lines of kmb_log_entries_total add up
  // to 15 and the ms timings of kmb_write_duration_seconds stand for 15 writes.
  const otlp = await OtlpReceiver.start();
  const statsd = await StatsdReceiver.start();
  t.after(() => Promise.all([otlp.close(), statsd.close()]));
  const h = new Harness(t);
  const server = await h.startServer({
    dataDir: await h.tempDir(),
    env: {
      KMB_TELEMETRY_OTLP_ENDPOINT: otlp.url,
      KMB_TELEMETRY_STATSD_ADDRESS: statsd.address,
      KMB_TELEMETRY_STATSD_PREFIX: 'kmbtest',
      KMB_TELEMETRY_EXPORT_INTERVAL_SECS: '1',
    },
  });
  const writes = await writeSome(h, server, 12);
  await otlp.waitFor(
    () => latest(otlp, 'kmb_log_entries_total')?.value === writes,
    10_000,
    `kmb_log_entries_total = ${writes}`,
  );
  const entries = latest(otlp, 'kmb_log_entries_total');
  assert.equal(entries?.kind, 'sum');
  assert.equal(entries.monotonic, true);
  assert.equal(entries.attributes['node_id'], '0');

  const operations = await scrape(server, 'vsr_operations_total', { status: 'success' });
  const prepares = await scrape(server, 'vsr_prepare_latency_seconds_count', {});
  assert.ok(operations !== undefined && operations >= writes, 'ops committed');
  assert.ok(prepares !== undefined && prepares > 0, 'the primary timed its prepares');
  const matches = (name: string, value: number, labels: Record<string, string>) => () =>
    otlp
      .latestPoints(name)
      .some(
        (p) =>
          Object.entries(labels).every(([k, v]) => p.attributes[k] === v) &&
          (p.kind === 'histogram' ? p.count : p.value) === value,
      );
  const success = { status: 'success', replica_id: '0' };
  await otlp.waitFor(matches('vsr_operations_total', operations, success), 10_000, 'vsr ops');
  await otlp.waitFor(matches('vsr_prepare_latency_ms', prepares, {}), 10_000, 'prepare latency');
  const prepare = latest(otlp, 'vsr_prepare_latency_ms');
  assert.equal(prepare?.kind, 'histogram');
  assert.deepEqual(prepare.bounds, [0.1, 0.5, 1, 2, 5, 10, 25, 50, 100]);
  assert.equal(
    prepare.bucketCounts.reduce((a, b) => a + b, 0),
    prepare.count,
  );
  assert.equal(prepare.attributes['replica_id'], '0');
  const aliases = otlp.metricPoints().filter((p) => /^vsr_.*_seconds$/.test(p.name));
  assert.deepEqual(aliases, [], 'no lint-clean alias is pushed');

  const entriesName = 'kmbtest.kmb_log_entries_total.node_id_0';
  const sumOf = (name: string) =>
    statsd.lines.filter((l) => l.name === name).reduce((sum, l) => sum + l.value, 0);
  await statsd.waitFor(() => sumOf(entriesName) === writes, 10_000, 'StatsD entries');
  const writeTimer = 'kmbtest.kmb_write_duration_seconds.node_id_0';
  const weight = () =>
    statsd.lines
      .filter((l) => l.name === writeTimer && l.type === 'ms')
      .reduce((sum, l) => sum + 1 / l.sampleRate, 0);
  await statsd.waitFor(() => Math.abs(weight() - writes) < 1e-6, 10_000, 'write timings');
  assert.deepEqual(statsd.malformed, []);
  assert.ok(statsd.lines.every((l) => l.name.startsWith('kmbtest.')));
  assert.ok(statsd.lines.every((l) => ['c', 'g', 'ms'].includes(l.type)));
  assert.ok(statsd.lines.some((l) => l.name === 'kmbtest.vsr_view_number.replica_id_0'));
  assert.equal((await server.stop()).code, 0);
});

test('a graceful stop pushes one final export', async (t) => {
  // Proves the shutdown flush: with an interval of an hour no periodic export happens while the
  // test writes, yet after SIGTERM the receiver holds an OTLP export whose
  // kmb_log_entries_total equals the writes made, and the server still exits 0.
  const otlp = await OtlpReceiver.start();
  t.after(() => otlp.close());
  const h = new Harness(t);
  const server = await h.startServer({
    dataDir: await h.tempDir(),
    env: { KMB_TELEMETRY_OTLP_ENDPOINT: otlp.url, KMB_TELEMETRY_EXPORT_INTERVAL_SECS: '3600' },
  });
  const writes = await writeSome(h, server, 3);
  assert.equal(otlp.requestCount('metrics'), 0);
  assert.equal((await server.stop()).code, 0);
  assert.equal(otlp.requestCount('metrics'), 1);
  assert.equal(latest(otlp, 'kmb_log_entries_total')?.value, writes);
});

test('dead OTLP and StatsD endpoints never stop or slow the node', async (t) => {
  // Proves failure isolation: with the OTLP endpoint on a port nobody listens on and StatsD
  // aimed at another, writes are answered, kmb_telemetry_export_errors_total{exporter="otlp"}
  // counts the failed pushes, the failure is logged as a warning once (rate-limited) not once
  // per interval, and SIGTERM still exits 0.
  const h = new Harness(t);
  const server = await h.startServer({
    dataDir: await h.tempDir(),
    env: {
      KMB_TELEMETRY_OTLP_ENDPOINT: `http://127.0.0.1:${await deadPort()}`,
      KMB_TELEMETRY_STATSD_ADDRESS: `127.0.0.1:${await deadPort()}`,
      KMB_TELEMETRY_EXPORT_INTERVAL_SECS: '1',
    },
  });
  const writes = await writeSome(h, server, 5);
  assert.equal(writes, 8);
  const failed = async () =>
    (await scrape(server, 'kmb_telemetry_export_errors_total', { exporter: 'otlp' })) ?? 0;
  const deadline = Date.now() + 15_000;
  while ((await failed()) < 3 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  assert.ok((await failed()) >= 3, 'three failed OTLP pushes are counted');
  const warnings = server.lines.filter(
    (l) => l.message === 'Telemetry export failed' && l.fields['exporter'] === 'otlp',
  );
  assert.equal(warnings.length, 1, 'logged once per minute, not once per failure');
  assert.match(warnings[0]?.level ?? '', /^warn/i);
  assert.equal((await server.stop()).code, 0);
});
