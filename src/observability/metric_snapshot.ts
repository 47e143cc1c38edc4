// A read of the node's instruments for the push exporters (OTLP, StatsD): it asks the prom-client
// registries the Metrics object owns for their current values, as a scrape does, and reshapes
// them into plain series under the spec's original names (docs/telemetry.md).
//
// /metrics serves some spec names under promtool-clean names with values in base units
// (vsr_prepare_latency_ms → vsr_prepare_latency_seconds, …; the fixed naming decision). Push
// exports have no lint, so this file maps those back: the name the spec documents, values and
// bucket bounds × 1000 where the spec's unit is ms. Every other metric keeps its name and values.
//
// Invariants: the read runs only on the exporters' timer, never on a request path; it allocates
// freely. A histogram series always has bounds.length + 1 per-bucket (non-cumulative) counts whose
// total is its count. A summary becomes a gauge of its quantiles plus `_sum` and `_count`
// counters, since neither OTLP's SDK data model nor StatsD has a summary type.

import type { Registry } from 'prom-client';

export type MetricKind = 'counter' | 'gauge' | 'histogram';

/** One labelled value of a counter (cumulative since start) or a gauge. */
export interface ValueSeries {
  /** name + labels, stable across reads: the key exporters keep deltas under. */
  readonly key: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

/** One labelled histogram, cumulative since start. */
export interface HistogramSeries {
  readonly key: string;
  readonly labels: Readonly<Record<string, string>>;
  /** Finite inclusive upper bounds, increasing. */
  readonly bounds: readonly number[];
  /** Observations per bucket (not cumulative); the last one is the +Inf bucket. */
  readonly bucketCounts: readonly number[];
  readonly sum: number;
  readonly count: number;
}

export interface MetricSnapshot {
  /** The spec's name (e.g. vsr_prepare_latency_ms). */
  readonly name: string;
  readonly help: string;
  readonly kind: MetricKind;
  /** UCUM-style unit for OTLP: 'ms', 's', 'By', or '1'. */
  readonly unit: string;
  readonly values: readonly ValueSeries[];
  readonly histograms: readonly HistogramSeries[];
}

/** Where exporters read from: a scrape-like read of every instrument. */
export type MetricSource = () => Promise<MetricSnapshot[]>;

interface SpecName {
  readonly name: string;
  /** Factor from the /metrics value to the spec's unit (1000 for seconds → ms). */
  readonly scale: number;
}

const ms = (name: string): SpecName => ({ name, scale: 1000 });
const same = (name: string): SpecName => ({ name, scale: 1 });

/** /metrics name → the spec's original name (the fixed naming decision, docs/metrics.md). */
export const specNames: ReadonlyMap<string, SpecName> = new Map([
  ['vsr_prepare_latency_seconds', ms('vsr_prepare_latency_ms')],
  ['vsr_commit_latency_seconds', ms('vsr_commit_latency_ms')],
  ['vsr_client_latency_seconds', ms('vsr_client_latency_ms')],
  ['vsr_view_change_latency_seconds', ms('vsr_view_change_latency_ms')],
  ['vsr_recovery_latency_seconds', ms('vsr_recovery_latency_ms')],
  ['vsr_state_transfer_latency_seconds', ms('vsr_state_transfer_latency_ms')],
  ['vsr_repair_latency_seconds', ms('vsr_repair_latency_ms')],
  ['vsr_clock_offset_seconds', ms('vsr_clock_offset_ms')],
  ['vsr_repair_ewma_latency_seconds', ms('vsr_repair_ewma_latency_ms')],
  ['kimberlite_replication_lag_seconds', ms('kimberlite_replication_lag_ms')],
  ['vsr_log_entries', same('vsr_log_entry_count')],
  ['vsr_repair_inflight', same('vsr_repair_inflight_count')],
  ['vsr_standbys', same('vsr_standby_count')],
  ['vsr_standbys_healthy', same('vsr_standby_healthy_count')],
  ['vsr_network_bandwidth_bytes_per_second', same('vsr_network_bandwidth_bytes_per_sec')],
  ['vsr_disk_bandwidth_bytes_per_second', same('vsr_disk_bandwidth_bytes_per_sec')],
  ['vsr_scrub_throughput_ops_per_second', same('vsr_scrub_throughput_ops_per_sec')],
  ['kimberlite_cluster_replicas', same('kimberlite_cluster_replicas_total')],
]);

/** The OTLP unit a metric name implies by its suffix. */
export function unitOf(name: string): string {
  const base = name.replace(/_(total|count|sum)$/, '');
  if (/_ms$/.test(base)) return 'ms';
  if (/_seconds$/.test(base)) return 's';
  if (/_bytes$/.test(base)) return 'By';
  return '1';
}

/** Scales a bound or a value, rounding away binary noise (0.0001 × 1000 is 0.1, exactly). */
function scaled(value: number, scale: number): number {
  if (scale === 1 || !Number.isFinite(value)) return value;
  return Number((value * scale).toPrecision(12));
}

interface RawSample {
  labels: Record<string, string | number>;
  value: number;
  metricName?: string;
}

interface RawMetric {
  name: string;
  help: string;
  type: unknown;
  values: RawSample[];
}

function plainLabels(
  labels: Record<string, string | number>,
  omit: string,
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(labels)) if (name !== omit) out[name] = String(value);
  return out;
}

/** A stable key for a series: name plus its labels in sorted order. */
export function seriesKey(name: string, labels: Readonly<Record<string, string>>): string {
  const names = Object.keys(labels).sort();
  return `${name}{${names.map((label) => `${label}=${labels[label] ?? ''}`).join(',')}}`;
}

function valueSeries(name: string, samples: readonly RawSample[], scale: number): ValueSeries[] {
  const series: ValueSeries[] = [];
  for (const sample of samples) {
    if (!Number.isFinite(sample.value)) continue;
    const labels = plainLabels(sample.labels, '');
    series.push({ key: seriesKey(name, labels), labels, value: scaled(sample.value, scale) });
  }
  return series;
}

interface HistogramDraft {
  labels: Record<string, string>;
  cumulative: [number, number][];
  sum: number;
  count: number;
}

function histogramDraft(drafts: Map<string, HistogramDraft>, sample: RawSample): HistogramDraft {
  const labels = plainLabels(sample.labels, 'le');
  const key = seriesKey('', labels);
  let draft = drafts.get(key);
  if (draft === undefined) {
    draft = { labels, cumulative: [], sum: 0, count: 0 };
    drafts.set(key, draft);
  }
  return draft;
}

/** Regroups Prometheus histogram samples (_bucket{le}, _sum, _count) into series. */
function histogramSeries(metric: RawMetric, name: string, scale: number): HistogramSeries[] {
  const drafts = new Map<string, HistogramDraft>();
  for (const sample of metric.values) {
    const draft = histogramDraft(drafts, sample);
    const suffix = (sample.metricName ?? '').slice(metric.name.length);
    if (suffix === '_sum') draft.sum = sample.value;
    else if (suffix === '_count') draft.count = sample.value;
    else if (suffix === '_bucket' && sample.labels['le'] !== '+Inf') {
      draft.cumulative.push([Number(sample.labels['le']), sample.value]);
    }
  }
  return [...drafts.values()].map((draft) => {
    draft.cumulative.sort((a, b) => a[0] - b[0]);
    const bucketCounts: number[] = [];
    let previous = 0;
    for (const [, cumulative] of draft.cumulative) {
      bucketCounts.push(Math.max(0, cumulative - previous));
      previous = Math.max(previous, cumulative);
    }
    bucketCounts.push(Math.max(0, draft.count - previous));
    return {
      key: seriesKey(name, draft.labels),
      labels: draft.labels,
      bounds: draft.cumulative.map(([bound]) => scaled(bound, scale)),
      bucketCounts,
      sum: scaled(draft.sum, scale),
      count: draft.count,
    };
  });
}

/** A summary as a gauge of its quantiles and counters `<name>_sum` and `<name>_count`. */
function summarySnapshots(metric: RawMetric, name: string, scale: number): MetricSnapshot[] {
  const bySuffix = (suffix: string): RawSample[] =>
    metric.values.filter((sample) => (sample.metricName ?? metric.name) === metric.name + suffix);
  const snapshot = (
    snapshotName: string,
    kind: MetricKind,
    samples: RawSample[],
    valueScale: number,
  ): MetricSnapshot => ({
    name: snapshotName,
    help: metric.help,
    kind,
    unit: unitOf(name),
    values: valueSeries(snapshotName, samples, valueScale),
    histograms: [],
  });
  return [
    snapshot(name, 'gauge', bySuffix(''), scale),
    snapshot(`${name}_sum`, 'counter', bySuffix('_sum'), scale),
    snapshot(`${name}_count`, 'counter', bySuffix('_count'), 1),
  ];
}

function toSnapshots(metric: RawMetric): MetricSnapshot[] {
  const spec = specNames.get(metric.name) ?? same(metric.name);
  const type = String(metric.type);
  if (type === 'summary') return summarySnapshots(metric, spec.name, spec.scale);
  const kind: MetricKind =
    type === 'histogram' ? 'histogram' : type === 'counter' ? 'counter' : 'gauge';
  const histogram = kind === 'histogram';
  return [
    {
      name: spec.name,
      help: metric.help,
      kind,
      unit: unitOf(spec.name),
      values: histogram ? [] : valueSeries(spec.name, metric.values, spec.scale),
      histograms: histogram ? histogramSeries(metric, spec.name, spec.scale) : [],
    },
  ];
}

/** Reads every metric of `registries()` (asked anew on each read) under the spec's names. */
export function registrySource(registries: () => readonly Registry[]): MetricSource {
  return async () => {
    const snapshots: MetricSnapshot[] = [];
    for (const registry of registries()) {
      const metrics = (await registry.getMetricsAsJSON()) as unknown as RawMetric[];
      for (const metric of metrics) snapshots.push(...toSnapshots(metric));
    }
    return snapshots;
  };
}
