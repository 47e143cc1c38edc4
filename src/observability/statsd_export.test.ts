// Tests of the StatsD push: the stats computed from reads of the instruments (counter increases,
// gauges, exact-weight timer samples), the line format and datagram packing, and an export
// through hot-shots to a real UDP socket.

import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import fc from 'fast-check';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { StatsdReceiver, parseStatsdLine } from '../testing/statsd_receiver.js';
import { registrySource } from './metric_snapshot.js';
import type { HistogramSeries, MetricSnapshot } from './metric_snapshot.js';
import {
  StatsdDeltaState,
  StatsdExporter,
  formatStatsdLine,
  packDatagrams,
  statsdName,
  statsdStats,
} from './statsd_export.js';

const bounds = [0.1, 0.5, 1, 2, 5, 10, 25, 50, 100];

function histogram(bucketCounts: number[], sum: number): MetricSnapshot {
  const labels = { replica_id: '0' };
  const series: HistogramSeries = {
    key: 'vsr_prepare_latency_ms{replica_id=0}',
    labels,
    bounds,
    bucketCounts,
    sum,
    count: bucketCounts.reduce((a, b) => a + b, 0),
  };
  return {
    name: 'vsr_prepare_latency_ms',
    help: '',
    kind: 'histogram',
    unit: 'ms',
    values: [],
    histograms: [series],
  };
}

function counter(value: number): MetricSnapshot {
  const labels = { node_id: '0', status: 'ok' };
  return {
    name: 'kmb_requests_total',
    help: '',
    kind: 'counter',
    unit: '1',
    values: [{ key: 'kmb_requests_total{node_id=0,status=ok}', labels, value }],
    histograms: [],
  };
}

test('counters send increases, gauges values, and a negative gauge is set, not adjusted', () => {
  // Proves the c and g rules: the first read sends the whole count, the next the increase, an
  // unchanged counter sends nothing; a negative gauge goes out as 0 then the value, because a
  // signed gauge line means "adjust by" to a StatsD daemon.
  const state = new StatsdDeltaState();
  const first = statsdStats([counter(5)], state);
  assert.deepEqual(first, [
    { name: 'kmb_requests_total.node_id_0.status_ok', value: 5, type: 'c', sampleRate: 1 },
  ]);
  assert.equal(statsdStats([counter(8)], state)[0]?.value, 3);
  assert.deepEqual(statsdStats([counter(8)], state), []);
  const gauge: MetricSnapshot = {
    name: 'vsr_clock_offset_ms',
    help: '',
    kind: 'gauge',
    unit: 'ms',
    values: [{ key: 'g', labels: { replica_id: '1' }, value: -2.5 }],
    histograms: [],
  };
  const lines = statsdStats([gauge], state).map((stat) => formatStatsdLine('kmb', stat));
  assert.deepEqual(lines, [
    'kmb.vsr_clock_offset_ms.replica_id_1:0|g',
    'kmb.vsr_clock_offset_ms.replica_id_1:-2.5|g',
  ]);
  assert.equal(statsdName('m', { code: 'KMB_ERR_X', q: '0.99' }), 'm.code_KMB_ERR_X.q_0_99');
});

test('timer samples stand for exactly the new observations, within the sample budget', () => {
  // Proves the ms rule on random histograms: for each bucket, the samples' weights (1/rate) add
  // up to that bucket's new observations since the previous export, every sample's value is the
  // bucket's upper bound (the last bound for +Inf), and a series sends at most
  // timerSamplesMax + one per bucket samples, however many observations there were.
  const counts = fc.array(fc.nat({ max: 100_000 }), { minLength: 10, maxLength: 10 });
  fc.assert(
    fc.property(counts, counts, fc.integer({ min: 1, max: 64 }), (a, more, budget) => {
      const state = new StatsdDeltaState();
      statsdStats([histogram(a, 1)], state, { timerSamplesMax: budget });
      const b = a.map((count, i) => count + (more[i] ?? 0));
      const stats = statsdStats([histogram(b, 2)], state, { timerSamplesMax: budget });
      assert.ok(stats.length <= budget + b.length);
      // The +Inf bucket reports the last bound, so value 100 stands for the last two buckets.
      const expected = new Map<number, number>();
      b.forEach((_, i) => {
        const value = bounds[i] ?? 100;
        expected.set(value, (expected.get(value) ?? 0) + (more[i] ?? 0));
      });
      for (const [value, observations] of expected) {
        const weight = stats
          .filter((s) => s.value === value && s.type === 'ms')
          .reduce((sum, s) => sum + 1 / s.sampleRate, 0);
        assert.ok(Math.abs(weight - observations) < 1e-6 * (1 + observations), `bucket ${value}`);
      }
    }),
    { numRuns: 200 },
  );
});

test('lines parse as name:value|type[|@rate] and datagrams stay under their size bound', () => {
  // Proves the wire format: every formatted line parses as plain StatsD, rates below 1 are
  // carried, and packing never makes a datagram longer than the bound nor loses or reorders a line.
  const line = formatStatsdLine('kimberlite', {
    name: 'vsr_prepare_latency_ms.replica_id_0',
    value: 0.5,
    type: 'ms',
    sampleRate: 1 / 3,
  });
  const parsed = parseStatsdLine(line);
  assert.ok(parsed !== null, line);
  assert.equal(parsed.name, 'kimberlite.vsr_prepare_latency_ms.replica_id_0');
  assert.ok(Math.abs(parsed.sampleRate - 1 / 3) < 1e-9);
  const lines = Array.from({ length: 500 }, (_, i) => `kimberlite.metric_${i}:${i}|c`);
  const datagrams = packDatagrams(lines, 200);
  assert.ok(datagrams.every((d) => d.length <= 200));
  assert.deepEqual(datagrams.join('\n').split('\n'), lines);
});

test('an export reaches a UDP socket with the prefix, spec names and increases', async (t) => {
  // Proves the exporter through hot-shots' UDP transport: after 3 then 2 more increments the two
  // exports send counter lines of 3 and 2 with the prefix, the /metrics histogram
  // vsr_prepare_latency_seconds goes out as ms timings under vsr_prepare_latency_ms whose
  // weights add up to the 2 observations, and every received line parses.
  const receiver = await StatsdReceiver.start();
  t.after(() => receiver.close());
  const registry = new Registry();
  registry.setDefaultLabels({ node_id: '0' });
  const entries = new Counter({ name: 'kmb_log_entries_total', help: 'h', registers: [registry] });
  const inFlight = new Gauge({ name: 'kmb_requests_in_flight', help: 'h', registers: [registry] });
  const latency = new Histogram({
    name: 'vsr_prepare_latency_seconds',
    help: 'h',
    buckets: bounds.map((ms) => ms / 1000),
    registers: [registry],
  });
  const [host, port] = receiver.address.split(':');
  const exporter = new StatsdExporter({
    host: host ?? '',
    port: Number(port),
    prefix: 'kimberlite',
    source: registrySource(() => [registry]),
  });
  t.after(() => exporter.close());
  entries.inc(3);
  inFlight.set(4);
  latency.observe(0.0004);
  latency.observe(0.003);
  await exporter.exportOnce();
  entries.inc(2);
  await exporter.exportOnce();
  const name = 'kimberlite.kmb_log_entries_total.node_id_0';
  await receiver.waitFor(
    () => receiver.lines.filter((l) => l.name === name).length === 2,
    5000,
    'two counter lines',
  );
  assert.deepEqual(receiver.malformed, []);
  const counts = receiver.lines.filter((l) => l.name === name);
  assert.deepEqual(
    counts.map((l) => [l.value, l.type]),
    [
      [3, 'c'],
      [2, 'c'],
    ],
  );
  const gauge = receiver.lines.find(
    (l) => l.name === 'kimberlite.kmb_requests_in_flight.node_id_0',
  );
  assert.equal(gauge?.type, 'g');
  assert.equal(gauge.value, 4);
  const timings = receiver.lines.filter(
    (l) => l.name === 'kimberlite.vsr_prepare_latency_ms.node_id_0',
  );
  assert.ok(timings.every((l) => l.type === 'ms'));
  assert.deepEqual(
    timings.map((l) => l.value).sort((a, b) => a - b),
    [0.5, 5],
  );
  assert.equal(
    timings.reduce((sum, l) => sum + 1 / l.sampleRate, 0),
    2,
  );
});
