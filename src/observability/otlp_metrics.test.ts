// Tests of the OTLP metrics push and of the export loop that drives both push exporters, against
// a real loopback OTLP/HTTP receiver and real prom-client registries.

import { strict as assert } from 'node:assert';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { Counter, Gauge, Histogram, Registry, Summary } from 'prom-client';
import { OtlpReceiver } from '../testing/otlp_receiver.js';
import { ExportLoop } from './export_loop.js';
import type { PushExporter } from './export_loop.js';
import { silentLogger } from './logger.js';
import { registrySource } from './metric_snapshot.js';
import { OtlpMetricsExporter, otlpMetricsUrl } from './otlp_metrics.js';

function registryWithWrites(): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ node_id: '0' });
  const entries = new Counter({ name: 'kmb_log_entries_total', help: 'h', registers: [registry] });
  entries.inc(7);
  const latency = new Histogram({
    name: 'vsr_prepare_latency_seconds',
    help: 'h',
    buckets: [0.0001, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1],
    registers: [registry],
  });
  for (const seconds of [0.0003, 0.0003, 0.004, 0.2]) latency.observe(seconds);
  const offset = new Gauge({ name: 'vsr_clock_offset_seconds', help: 'h', registers: [registry] });
  offset.set(-0.25);
  const commit = new Summary({
    name: 'kimberlite_consensus_commit_latency_seconds',
    help: 'h',
    percentiles: [0.5, 0.99],
    registers: [registry],
  });
  commit.observe(0.002);
  return registry;
}

function exporterFor(endpoint: string, registry: Registry): OtlpMetricsExporter {
  return new OtlpMetricsExporter({
    endpoint,
    source: registrySource(() => [registry]),
    serviceName: 'kimberlite-test',
    serviceVersion: '0.1.0',
    nodeId: 0,
    timeoutMs: 2000,
  });
}

test('OTLP push carries counters, gauges and histograms under the spec names', async (t) => {
  // Proves the OTLP export end to end: a counter arrives as a monotonic cumulative sum with its
  // value and node_id attribute; /metrics' vsr_prepare_latency_seconds arrives as the spec's
  // vsr_prepare_latency_ms, an explicit-bucket histogram with the spec's ms bounds, per-bucket
  // counts that add up to the 4 observations, and its sum in ms; a seconds gauge arrives in ms;
  // a summary arrives as a gauge of quantiles plus _sum/_count; the resource names the service.
  const receiver = await OtlpReceiver.start();
  t.after(() => receiver.close());
  const exporter = exporterFor(receiver.url, registryWithWrites());
  await exporter.exportOnce();
  await exporter.close();
  const points = receiver.metricPoints();
  const entries = points.find((p) => p.name === 'kmb_log_entries_total');
  assert.ok(entries !== undefined, 'kmb_log_entries_total is exported');
  assert.equal(entries.kind, 'sum');
  assert.equal(entries.monotonic, true);
  assert.equal(entries.temporality, 2, 'cumulative');
  assert.equal(entries.value, 7);
  assert.equal(entries.attributes['node_id'], '0');
  assert.equal(entries.resource['service.name'], 'kimberlite-test');
  assert.equal(entries.resource['service.instance.id'], '0');
  const latency = points.find((p) => p.name === 'vsr_prepare_latency_ms');
  assert.ok(latency !== undefined, 'the spec name is used');
  assert.equal(latency.kind, 'histogram');
  assert.equal(latency.unit, 'ms');
  assert.deepEqual(latency.bounds, [0.1, 0.5, 1, 2, 5, 10, 25, 50, 100]);
  assert.deepEqual(latency.bucketCounts, [0, 2, 0, 0, 1, 0, 0, 0, 0, 1]);
  assert.equal(latency.count, 4);
  assert.ok(Math.abs(latency.value - 204.6) < 1e-6, `sum in ms, got ${latency.value}`);
  assert.ok(!points.some((p) => p.name === 'vsr_prepare_latency_seconds'));
  const offset = points.find((p) => p.name === 'vsr_clock_offset_ms');
  assert.equal(offset?.kind, 'gauge');
  assert.equal(offset.value, -250);
  const quantiles = points.filter((p) => p.name === 'kimberlite_consensus_commit_latency_seconds');
  assert.deepEqual(quantiles.map((p) => p.attributes['quantile']).sort(), ['0.5', '0.99']);
  const count = points.find((p) => p.name === 'kimberlite_consensus_commit_latency_seconds_count');
  assert.equal(count?.value, 1);
});

test('a failing collector: the export rejects, the loop counts it and goes on', async (t) => {
  // Proves failure handling: with the receiver answering 503 an export rejects, the loop counts
  // one failure per tick (onFailure sees 'otlp'), and once the receiver recovers the next tick
  // succeeds. The loop never throws to its caller.
  const receiver = await OtlpReceiver.start();
  t.after(() => receiver.close());
  receiver.failWith(503);
  const failures: string[] = [];
  const registry = registryWithWrites();
  const loop = new ExportLoop({
    exporter: exporterFor(receiver.url, registry),
    intervalMs: 60_000,
    logger: silentLogger(),
    onFailure: (name) => failures.push(name),
  });
  await loop.tick();
  assert.deepEqual(failures, ['otlp']);
  assert.equal(loop.exportCount, 0);
  receiver.failWith(null);
  await loop.tick();
  assert.equal(loop.exportCount, 1);
  assert.equal(failures.length, 1);
  assert.ok(receiver.metricPoints().some((p) => p.name === 'kmb_log_entries_total'));
  await loop.stop();
});

test('an endpoint that never answers cannot hold up stop or pile up exports', async (t) => {
  // Proves boundedness against a black-hole collector (accepts, never answers): a second tick
  // while the first export hangs is skipped and counted, not queued; stop() returns within its
  // timeout even though the final export cannot complete.
  const hanging = createServer(() => undefined);
  await new Promise<void>((resolve) => hanging.listen(0, '127.0.0.1', () => resolve()));
  t.after(() => {
    hanging.closeAllConnections();
    hanging.close();
  });
  const url = `http://127.0.0.1:${(hanging.address() as AddressInfo).port}`;
  const failures: string[] = [];
  const loop = new ExportLoop({
    exporter: exporterFor(url, registryWithWrites()),
    intervalMs: 60_000,
    logger: silentLogger(),
    onFailure: (name) => failures.push(name),
    stopTimeoutMs: 300,
  });
  void loop.tick();
  await new Promise((resolve) => setTimeout(resolve, 50));
  void loop.tick();
  assert.deepEqual(failures, ['otlp'], 'the overlapping tick was skipped and counted');
  const startedMs = performance.now();
  await loop.stop();
  assert.ok(performance.now() - startedMs < 2000, 'stop is bounded by its timeout');
});

test('the export loop makes one final export on stop', async () => {
  // Proves the shutdown flush: a loop whose timer never fired still exports once when stopped,
  // then closes its exporter; and the metrics URL is the endpoint plus /v1/metrics, once.
  const calls: string[] = [];
  const exporter: PushExporter = {
    name: 'fake',
    exportOnce: () => {
      calls.push('export');
      return Promise.resolve();
    },
    close: () => {
      calls.push('close');
      return Promise.resolve();
    },
  };
  const loop = new ExportLoop({
    exporter,
    intervalMs: 60_000,
    logger: silentLogger(),
    onFailure: () => assert.fail('no failure expected'),
  });
  loop.start();
  await loop.stop();
  assert.deepEqual(calls, ['export', 'close']);
  assert.equal(otlpMetricsUrl('http://collector:4318/'), 'http://collector:4318/v1/metrics');
  const full = 'http://collector:4318/v1/metrics';
  assert.equal(otlpMetricsUrl(full), full);
});
