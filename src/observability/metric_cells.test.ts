// Proves that the cell families render what their cells hold: counters report their total at
// each scrape (repeated scrapes never double-count) and never go backwards even when a read
// source does, gauges report their latest value, histograms count a value equal to a bound into
// that bound's bucket, render cumulative buckets with +Inf, _sum and _count per label
// combination, refuse non-finite values, and render one cell exactly at another family's bounds
// and scale; summaries report nearest-rank quantiles of a sliding window.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Registry } from 'prom-client';
import {
  CounterFamily,
  GaugeFamily,
  HistogramFamily,
  SummaryFamily,
  unionBounds,
} from './metric_cells.js';

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

test('a read counter never reports less than before; read gauges follow their source', async () => {
  const registry = new Registry();
  let source = 5;
  new CounterFamily({ registry, name: 'r_total', help: 'h' }).reader().bind(() => source);
  new GaugeFamily({ registry, name: 'r', help: 'h' }).reader().bind(() => source);
  assert.deepEqual(lines(await registry.metrics()), ['r_total 5', 'r 5']);
  source = 2;
  assert.deepEqual(lines(await registry.metrics()), ['r_total 5', 'r 2']);
  source = 7;
  assert.deepEqual(lines(await registry.metrics()), ['r_total 7', 'r 7']);
});

test("one histogram cell renders at two families' bounds, one of them scaled", async () => {
  const registry = new Registry();
  const seconds = [0.001, 0.01];
  const other = [0.005, 0.01, 0.1];
  const cell = new HistogramFamily({
    registry,
    name: 'a_seconds',
    help: 'h',
    upperBounds: seconds,
  }).cell({}, unionBounds(seconds, other));
  new HistogramFamily({
    registry,
    name: 'b_ms',
    help: 'h',
    upperBounds: other,
    scale: 1000,
    renderedBounds: [5, 10, 100],
  }).adopt(cell);
  for (const value of [0.0005, 0.003, 0.008, 0.05]) cell.observe(value);
  assert.deepEqual(lines(await registry.metrics()), [
    'a_seconds_bucket{le="0.001"} 1',
    'a_seconds_bucket{le="0.01"} 3',
    'a_seconds_bucket{le="+Inf"} 4',
    'a_seconds_sum 0.0615',
    'a_seconds_count 4',
    'b_ms_bucket{le="5"} 2',
    'b_ms_bucket{le="10"} 3',
    'b_ms_bucket{le="100"} 4',
    'b_ms_bucket{le="+Inf"} 4',
    'b_ms_sum 61.5',
    'b_ms_count 4',
  ]);
  const lone = new HistogramFamily({ registry, name: 'c', help: 'h', upperBounds: [1] }).cell();
  const family = new HistogramFamily({ registry, name: 'd', help: 'h', upperBounds: [2] });
  assert.throws(() => family.adopt(lone), /no bucket at 2/);
});

test('summaries report nearest-rank quantiles of the last observations', async () => {
  const registry = new Registry();
  const cell = new SummaryFamily({ registry, name: 's_seconds', help: 'h' }, 4).cell();
  for (const value of [100, 1, 2, 3, 4]) cell.observe(value);
  const rendered = lines(await registry.metrics());
  assert.deepEqual(rendered, [
    's_seconds{quantile="0.5"} 2',
    's_seconds{quantile="0.9"} 4',
    's_seconds{quantile="0.99"} 4',
    's_seconds{quantile="0.999"} 4',
    's_seconds_sum 110',
    's_seconds_count 5',
  ]);
});
