// StatsD push: each export reads every instrument (metric_snapshot.ts, the spec's original
// names) and sends plain StatsD lines over UDP through hot-shots' transport:
//   counters   `c`  the increase since the previous export (nothing when it did not move);
//   gauges     `g`  the current value (a negative one as `0|g` then `-v|g`, since a signed `g`
//                   means "adjust by" in StatsD);
//   latency histograms (unit ms or s) `ms` timings, built from the histogram's new observations
//                   since the previous export, never per request: each non-empty bucket sends
//                   k samples of its upper bound (ms) with sample rate k/n, where n is the bucket's
//                   new observations and k its share of at most `timerSamplesMax` samples, so the
//                   daemon's count and rate are exact and its percentiles have bucket resolution
//                   (the +Inf bucket reports the last finite bound, "at least" that much);
//   other histograms `<name>_count` and `<name>_sum` as `c` increases.
// Labels fold into the name as dotted `label_value` segments in label order, after the prefix:
// `kimberlite.kmb_requests_total.method_append.node_id_0.status_ok:3|c`.
//
// hot-shots' own `timing(…, sampleRate)` drops samples at random on the client to honour a rate,
// which would make the counts inexact; so the lines are formatted here and handed to the client's
// raw `send` (one datagram per call, packed to at most `datagramBytesMax`), with no buffering in
// the client. Invariants: at most `statsPerExportMax` stats per export (the rest are dropped and
// counted); the delta state holds one entry per series, which the registries bound.

import { StatsD } from 'hot-shots';
import { assert } from '../core/assert.js';
import type { PushExporter } from './export_loop.js';
import type { HistogramSeries, MetricSnapshot, MetricSource } from './metric_snapshot.js';

export type StatsdType = 'c' | 'g' | 'ms';

export interface StatsdStat {
  readonly name: string;
  readonly value: number;
  readonly type: StatsdType;
  /** In (0, 1]; below 1 the line carries `|@rate` and stands for 1/rate observations. */
  readonly sampleRate: number;
}

/** The values each series had at the previous export, for counter and histogram increases. */
export class StatsdDeltaState {
  readonly counters = new Map<string, number>();
  readonly histograms = new Map<string, { bucketCounts: readonly number[]; sum: number }>();
}

export interface StatsdStatOptions {
  /** Samples per histogram series per export, spread over its non-empty buckets. */
  readonly timerSamplesMax: number;
}

export const timerSamplesMaxDefault = 32;
/** Stats sent per export at most; a node has a few hundred series. */
export const statsPerExportMax = 20_000;
/** Bytes per UDP datagram: fits a 1500-byte Ethernet MTU after IP and UDP headers. */
export const datagramBytesMax = 1432;

/** A label value as a StatsD name segment: anything but letters, digits, `_`, `-` becomes `_`. */
function segment(text: string): string {
  return text.replace(/[^A-Za-z0-9_-]/g, '_');
}

/** The StatsD name of one series: the metric name, then `label_value` per label, sorted. */
export function statsdName(name: string, labels: Readonly<Record<string, string>>): string {
  let out = segment(name);
  for (const label of Object.keys(labels).sort()) {
    out += `.${segment(label)}_${segment(labels[label] ?? '')}`;
  }
  return out;
}

function counterStats(snapshot: MetricSnapshot, state: StatsdDeltaState, out: StatsdStat[]): void {
  for (const series of snapshot.values) {
    const previous = state.counters.get(series.key) ?? 0;
    state.counters.set(series.key, series.value);
    // A counter below its previous value was reset: all of it is new.
    const delta = series.value >= previous ? series.value - previous : series.value;
    if (delta > 0) {
      const name = statsdName(snapshot.name, series.labels);
      out.push({ name, value: delta, type: 'c', sampleRate: 1 });
    }
  }
}

function gaugeStats(snapshot: MetricSnapshot, out: StatsdStat[]): void {
  for (const series of snapshot.values) {
    const name = statsdName(snapshot.name, series.labels);
    if (series.value < 0) out.push({ name, value: 0, type: 'g', sampleRate: 1 });
    out.push({ name, value: series.value, type: 'g', sampleRate: 1 });
  }
}

/** Bucket by bucket, the new observations since `previous` (all of them after a reset). */
function newBucketCounts(series: HistogramSeries, previous: readonly number[] | undefined) {
  const fresh = series.bucketCounts.map((count, index) => count - (previous?.[index] ?? 0));
  const reset = previous?.length !== series.bucketCounts.length || fresh.some((n) => n < 0);
  return reset && previous !== undefined ? [...series.bucketCounts] : fresh;
}

function timerStats(
  name: string,
  series: HistogramSeries,
  fresh: readonly number[],
  toMs: number,
  options: StatsdStatOptions,
  out: StatsdStat[],
): void {
  const total = fresh.reduce((sum, n) => sum + n, 0);
  if (total === 0) return;
  const lastBound = series.bounds[series.bounds.length - 1] ?? series.sum / series.count;
  fresh.forEach((observations, index) => {
    if (observations <= 0) return;
    const share = Math.round((observations * options.timerSamplesMax) / total);
    const samples = Math.min(observations, Math.max(1, share));
    const value = (series.bounds[index] ?? lastBound) * toMs;
    const sampleRate = samples / observations;
    for (let sample = 0; sample < samples; sample += 1) {
      out.push({ name, value, type: 'ms', sampleRate });
    }
  });
}

function histogramStats(
  snapshot: MetricSnapshot,
  state: StatsdDeltaState,
  options: StatsdStatOptions,
  out: StatsdStat[],
): void {
  const toMs = snapshot.unit === 'ms' ? 1 : snapshot.unit === 's' ? 1000 : 0;
  for (const series of snapshot.histograms) {
    const previous = state.histograms.get(series.key);
    state.histograms.set(series.key, { bucketCounts: series.bucketCounts, sum: series.sum });
    const fresh = newBucketCounts(series, previous?.bucketCounts);
    const name = statsdName(snapshot.name, series.labels);
    if (toMs > 0) {
      timerStats(name, series, fresh, toMs, options, out);
      continue;
    }
    const count = fresh.reduce((sum, n) => sum + n, 0);
    const sum = previous === undefined ? series.sum : series.sum - previous.sum;
    if (count > 0) {
      out.push({ name: `${name}_count`, value: count, type: 'c', sampleRate: 1 });
      out.push({ name: `${name}_sum`, value: Math.max(0, sum), type: 'c', sampleRate: 1 });
    }
  }
}

/** The stats for one read of the instruments; updates `state` to it. Pure otherwise. */
export function statsdStats(
  snapshots: readonly MetricSnapshot[],
  state: StatsdDeltaState,
  options: StatsdStatOptions = { timerSamplesMax: timerSamplesMaxDefault },
): StatsdStat[] {
  assert(options.timerSamplesMax >= 1, 'timerSamplesMax must be >= 1');
  const out: StatsdStat[] = [];
  for (const snapshot of snapshots) {
    if (snapshot.kind === 'counter') counterStats(snapshot, state, out);
    else if (snapshot.kind === 'gauge') gaugeStats(snapshot, out);
    else histogramStats(snapshot, state, options, out);
  }
  return out;
}

/** A number as StatsD text: finite, no exponent for ordinary magnitudes. */
function numberText(value: number): string {
  return Number.isInteger(value) ? String(value) : String(Number(value.toPrecision(10)));
}

/** One StatsD line: `prefix.name:value|type[|@rate]`. */
export function formatStatsdLine(prefix: string, stat: StatsdStat): string {
  const head = prefix === '' ? stat.name : `${prefix}.${stat.name}`;
  const rate = stat.sampleRate < 1 ? `|@${numberText(stat.sampleRate)}` : '';
  return `${head}:${numberText(stat.value)}|${stat.type}${rate}`;
}

/** Packs lines into newline-separated datagram payloads of at most `bytesMax` bytes each. */
export function packDatagrams(lines: readonly string[], bytesMax = datagramBytesMax): string[] {
  const datagrams: string[] = [];
  let current = '';
  for (const line of lines) {
    if (current !== '' && current.length + 1 + line.length > bytesMax) {
      datagrams.push(current);
      current = '';
    }
    current = current === '' ? line : `${current}\n${line}`;
  }
  if (current !== '') datagrams.push(current);
  return datagrams;
}

export interface StatsdExporterOptions {
  readonly host: string;
  readonly port: number;
  /** Prepended with a dot; '' for none. */
  readonly prefix: string;
  readonly source: MetricSource;
  readonly timerSamplesMax?: number;
}

/** hot-shots' raw-line method (lib/statsd.js `Client.prototype.send`); its typings omit it. */
interface RawSend {
  send(message: string, tags: undefined, callback: (error?: Error | null) => void): void;
}

/** Pushes every instrument to a StatsD daemon over UDP, one export per call. */
export class StatsdExporter implements PushExporter {
  readonly name = 'statsd';
  /** Stats left out because an export had more than statsPerExportMax. */
  droppedStatCount = 0;
  private readonly client: StatsD;
  private readonly state = new StatsdDeltaState();
  private readonly socketErrors: Error[] = [];

  constructor(private readonly options: StatsdExporterOptions) {
    this.client = new StatsD({
      host: options.host,
      port: options.port,
      protocol: 'udp',
      maxBufferSize: 0,
      cacheDns: true,
      errorHandler: (error) => {
        if (this.socketErrors.length < 16) this.socketErrors.push(error);
      },
    });
  }

  async exportOnce(): Promise<void> {
    const snapshots = await this.options.source();
    const timerSamplesMax = this.options.timerSamplesMax ?? timerSamplesMaxDefault;
    const stats = statsdStats(snapshots, this.state, { timerSamplesMax });
    if (stats.length > statsPerExportMax) {
      this.droppedStatCount += stats.length - statsPerExportMax;
      stats.length = statsPerExportMax;
    }
    const lines = stats.map((stat) => formatStatsdLine(this.options.prefix, stat));
    const raw = this.client as unknown as RawSend;
    const sends = packDatagrams(lines).map(
      (datagram) =>
        new Promise<void>((resolve, reject) => {
          raw.send(datagram, undefined, (error) => (error ? reject(error) : resolve()));
        }),
    );
    await Promise.all(sends);
    const socketError = this.socketErrors.shift();
    if (socketError !== undefined) throw socketError;
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => this.client.close(() => resolve()));
  }
}
