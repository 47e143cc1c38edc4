// Proves that the cell families render what their cells hold: counters flush only their growth
// at each scrape (so repeated scrapes never double-count), gauges report their latest value,
// and histograms count a value equal to a bound into that bound's bucket, render cumulative
// buckets with +Inf, _sum and _count per label combination, and refuse non-finite values.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Registry } from 'prom-client';
import { CounterFamily, GaugeFamily, HistogramFamily } from './metric_cells.js';

function lines(text: string): string[] {
  return text.split('\n').filter((line) => line !== '' && !line.startsWith('#'));
}

test('counter families flush growth once, per label combination', async () => {
  const registry = new Registry();
  const family = new CounterFamily({ registry, name: 'c_total', help: 'h', labelNames: ['k'] });
  const a = family.cell({ k: 'a' });
  family.cell({ k: 'b' });
  a.inc(2);
  assert.deepEqual(lines(await registry.metrics()), ['c_total{k="a"} 2', 'c_total{k="b"} 0']);
  a.inc();
  await registry.metrics();
  assert.deepEqual(lines(await registry.metrics()), ['c_total{k="a"} 3', 'c_total{k="b"} 0']);
});

test('gauge families report the latest value', async () => {
  const registry = new Registry();
  const gauge = new GaugeFamily({ registry, name: 'g', help: 'h' }).cell();
  gauge.set(10);
  gauge.inc(5);
  gauge.dec(2);
  assert.deepEqual(lines(await registry.metrics()), ['g 13']);
});

test('histograms bucket inclusively and render cumulative counts', async () => {
  const registry = new Registry();
  const family = new HistogramFamily({
    registry,
    name: 'h_seconds',
    help: 'h',
    labelNames: ['op'],
    upperBounds: [0.1, 1],
  });
  const cell = family.cell({ op: 'x' });
  for (const value of [0.05, 0.1, 0.5, 1, 3]) cell.observe(value);
  assert.deepEqual(lines(await registry.metrics()), [
    'h_seconds_bucket{op="x",le="0.1"} 2',
    'h_seconds_bucket{op="x",le="1"} 4',
    'h_seconds_bucket{op="x",le="+Inf"} 5',
    'h_seconds_sum{op="x"} 4.65',
    'h_seconds_count{op="x"} 5',
  ]);
  assert.throws(() => cell.observe(Number.NaN), /finite/);
  const json = await registry.getMetricsAsJSON();
  assert.equal(json[0]?.type, 'histogram');
});
