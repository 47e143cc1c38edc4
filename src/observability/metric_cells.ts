// Cheap instrument cells, rendered by prom-client registries only when somebody scrapes.
//
// prom-client's own `inc()`, `set()` and `observe()` build label objects, hash them into
// strings and return result objects or closures on every call (their cost: docs/performance.md,
// "Figures behind the code"), too much for the write path (DESIGN.md §6 budgets all of
// observability at < 1% overhead). So the node updates plain numeric cells here instead:
// `inc()` and `set()` are one addition or one
// store, a histogram's `observe()` a scan of its bucket bounds and three additions, a summary's
// one store into a ring; none allocates. Families are registry metrics whose `get()` (run at
// scrape or export time) reads the cells and reports samples; nothing is copied before then.
//
// One instrument, several names: a family may adopt a cell another family created, under its
// own labels and with a scale factor (seconds rendered as milliseconds). A histogram cell counts
// into the union of the bucket bounds of every family that renders it, so each family reports
// exact cumulative counts at its own bounds. A ReadCell has no state of its own: its value is
// read from a function bound later (replica state, a sum of other cells) at scrape time.
//
// Invariants: a counter cell only grows (asserted); a family never reports a counter lower than
// it reported before; a cell's labels object is built once, when the cell is created, and every
// series exists in the exposition from then on (at 0), so `rate()` works from the first scrape.
// Families never forget a cell; callers bound how many they create (label values come from
// closed sets or from bounded ids).

import type { Metric, Registry } from 'prom-client';
import { assert } from '../core/assert.js';

export type LabelValues = Readonly<Record<string, string>>;

/** Anything a counter or gauge family can report: labels and a current value. */
export interface Readable {
  readonly labels: LabelValues;
  current(): number;
}

/** A monotonically increasing count. */
export class CounterCell implements Readable {
  value = 0;

  constructor(readonly labels: LabelValues) {}

  inc(amount = 1): void {
    assert(amount >= 0, 'a counter never decreases');
    this.value += amount;
  }

  current(): number {
    return this.value;
  }
}

/** A value that may go up and down. */
export class GaugeCell implements Readable {
  value = 0;

  constructor(readonly labels: LabelValues) {}

  set(value: number): void {
    this.value = value;
  }

  inc(amount = 1): void {
    this.value += amount;
  }

  dec(amount = 1): void {
    this.value -= amount;
  }

  current(): number {
    return this.value;
  }
}

/** A value read at scrape time from a function bound by whoever knows it (0 until bound). */
export class ReadCell implements Readable {
  private reader: () => number = () => 0;

  constructor(readonly labels: LabelValues) {}

  bind(reader: () => number): void {
    this.reader = reader;
  }

  current(): number {
    return this.reader();
  }
}

/** Observations counted into fixed buckets (upper bounds inclusive, as Prometheus' `le`). */
export class HistogramCell {
  /** Observations per bucket, not cumulative; the last slot is the +Inf bucket. */
  readonly bucketCounts: Float64Array;
  sum = 0;
  count = 0;

  constructor(
    readonly labels: LabelValues,
    /** Strictly increasing; the union of the bounds of every family that renders the cell. */
    readonly upperBounds: readonly number[],
  ) {
    assert(upperBounds.length > 0, 'a histogram needs at least one bucket');
    for (let index = 1; index < upperBounds.length; index += 1) {
      assert((upperBounds[index - 1] ?? 0) < (upperBounds[index] ?? 0), 'bounds must increase');
    }
    this.bucketCounts = new Float64Array(upperBounds.length + 1);
  }

  observe(value: number): void {
    assert(Number.isFinite(value), 'a histogram observes finite values only');
    const bounds = this.upperBounds;
    let index = 0;
    while (index < bounds.length && value > (bounds[index] ?? Infinity)) index += 1;
    this.bucketCounts[index] = (this.bucketCounts[index] ?? 0) + 1;
    this.sum += value;
    this.count += 1;
  }
}

/** The sorted union of several bucket layouts, for a cell several families render. */
export function unionBounds(...layouts: readonly (readonly number[])[]): number[] {
  return [...new Set(layouts.flat())].sort((a, b) => a - b);
}

/**
 * Recent observations for quantiles (a sliding window of the last `windowCountMax`), plus the
 * running sum and count since the process started. Observing is one store; quantiles are
 * computed at scrape time from a sorted copy of the window.
 */
export class SummaryCell {
  private readonly window: Float64Array;
  private next = 0;
  private filled = 0;
  sum = 0;
  count = 0;

  constructor(
    readonly labels: LabelValues,
    readonly windowCountMax: number,
  ) {
    assert(Number.isInteger(windowCountMax) && windowCountMax > 0, 'a window of observations');
    this.window = new Float64Array(windowCountMax);
  }

  observe(value: number): void {
    assert(Number.isFinite(value), 'a summary observes finite values only');
    this.window[this.next] = value;
    this.next = (this.next + 1) % this.windowCountMax;
    if (this.filled < this.windowCountMax) this.filled += 1;
    this.sum += value;
    this.count += 1;
  }

  /** The q-quantile (nearest rank) of the window; NaN when nothing was observed. */
  quantiles(qs: readonly number[]): number[] {
    if (this.filled === 0) return qs.map(() => NaN);
    const sorted = this.window.slice(0, this.filled).sort();
    return qs.map((q) => {
      const rank = Math.min(this.filled - 1, Math.max(0, Math.ceil(q * this.filled) - 1));
      return sorted[rank] ?? NaN;
    });
  }
}

export interface FamilyOptions {
  registry: Registry;
  name: string;
  help: string;
  labelNames?: readonly string[];
}

interface Sample {
  labels: Record<string, string | number>;
  value: number;
  metricName?: string;
}

type MetricType = 'counter' | 'gauge' | 'histogram' | 'summary';

/**
 * A metric a prom-client Registry renders: the registry only calls `get()` (and `reset()`), so
 * a family need not be one of prom-client's classes, whose state it would have to duplicate.
 */
abstract class CellMetric {
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly string[];
  readonly aggregator = 'sum';

  constructor(
    options: FamilyOptions,
    readonly type: MetricType,
  ) {
    this.name = options.name;
    this.help = options.help;
    this.labelNames = options.labelNames ?? [];
    // The registry's typings ask for a prom-client Metric; it uses name, get() and reset().
    options.registry.registerMetric(this as unknown as Metric);
  }

  protected abstract samples(): Sample[];

  get(): Promise<{
    name: string;
    help: string;
    type: MetricType;
    aggregator: string;
    values: Sample[];
  }> {
    const { name, help, type, aggregator } = this;
    return Promise.resolve({ name, help, type, aggregator, values: this.samples() });
  }

  /** Cells are the state, and they are never reset. */
  reset(): void {}
}

interface ValueSeries {
  readonly labels: LabelValues;
  readonly source: Readable;
  readonly scale: number;
}

/** Counter or gauge series, each reading a cell (its own or adopted) at scrape time. */
abstract class ValueFamily extends CellMetric {
  protected readonly series: ValueSeries[] = [];
  private reported: number[] = [];

  /**
   * A series whose value is read from a function bound later (for a counter, the function
   * must never decrease).
   */
  reader(labels: LabelValues = {}): ReadCell {
    const cell = new ReadCell(labels);
    this.adopt(cell);
    return cell;
  }

  /** Reports `source` (a cell of this or another family) under `labels`, times `scale`. */
  adopt(source: Readable, labels: LabelValues = source.labels, scale = 1): void {
    this.series.push({ labels, source, scale });
    this.reported.push(0);
  }

  protected samples(): Sample[] {
    const counter = this.type === 'counter';
    return this.series.map((series, index) => {
      let value = series.source.current() * series.scale;
      if (counter) {
        // A counter never goes backwards, whatever its source does.
        value = Math.max(value, this.reported[index] ?? 0);
        this.reported[index] = value;
      }
      return { labels: { ...series.labels }, value };
    });
  }
}

/** All series of one counter metric (one per label combination). */
export class CounterFamily extends ValueFamily {
  constructor(options: FamilyOptions) {
    super(options, 'counter');
  }

  /** Creates a cell; call it once per label combination and keep the result. */
  cell(labels: LabelValues = {}): CounterCell {
    const cell = new CounterCell(labels);
    this.adopt(cell);
    return cell;
  }
}

/** All series of one gauge metric (one per label combination). */
export class GaugeFamily extends ValueFamily {
  constructor(options: FamilyOptions) {
    super(options, 'gauge');
  }

  /** Creates a cell; call it once per label combination and keep the result. */
  cell(labels: LabelValues = {}): GaugeCell {
    const cell = new GaugeCell(labels);
    this.adopt(cell);
    return cell;
  }
}

interface HistogramSeries {
  readonly labels: LabelValues;
  readonly cell: HistogramCell;
  /** For each of the family's bounds, the index of that bound in the cell's bounds. */
  readonly boundIndexes: readonly number[];
}

export interface HistogramFamilyOptions extends FamilyOptions {
  /** The bounds this family reports, in the cells' unit (seconds). */
  upperBounds: readonly number[];
  /** Rendered values are the cells' times this (1000: seconds shown as milliseconds). */
  scale?: number;
  /** The `le` labels, in the rendered unit (default: upperBounds times scale). */
  renderedBounds?: readonly number[];
}

/** All series of one histogram metric, each reporting a cell at the family's bounds. */
export class HistogramFamily extends CellMetric {
  readonly upperBounds: readonly number[];
  private readonly scale: number;
  private readonly renderedBounds: readonly string[];
  private readonly series: HistogramSeries[] = [];

  constructor(options: HistogramFamilyOptions) {
    super(options, 'histogram');
    const bounds = options.upperBounds;
    assert(bounds.length > 0, 'a histogram needs at least one bucket');
    this.upperBounds = [...bounds];
    this.scale = options.scale ?? 1;
    const rendered = options.renderedBounds ?? bounds.map((bound) => bound * this.scale);
    assert(rendered.length === bounds.length, 'one rendered bound per bound');
    this.renderedBounds = rendered.map((bound) => String(bound));
  }

  /** Creates a cell with this family's bounds (or `cellBounds`, a superset of them). */
  cell(labels: LabelValues = {}, cellBounds: readonly number[] = this.upperBounds): HistogramCell {
    const cell = new HistogramCell(labels, cellBounds);
    this.adopt(cell);
    return cell;
  }

  /** Reports a cell (its bounds must include this family's) under `labels`. */
  adopt(cell: HistogramCell, labels: LabelValues = cell.labels): void {
    const boundIndexes = this.upperBounds.map((bound) => {
      const index = cell.upperBounds.indexOf(bound);
      assert(index >= 0, `the cell has no bucket at ${bound} for ${this.name}`);
      return index;
    });
    this.series.push({ labels, cell, boundIndexes });
  }

  protected samples(): Sample[] {
    const samples: Sample[] = [];
    const bucket = `${this.name}_bucket`;
    for (const { labels, cell, boundIndexes } of this.series) {
      let cumulative = 0;
      let counted = 0;
      boundIndexes.forEach((boundIndex, index) => {
        while (counted <= boundIndex) cumulative += cell.bucketCounts[counted++] ?? 0;
        const le = this.renderedBounds[index] ?? '';
        samples.push({ labels: { ...labels, le }, value: cumulative, metricName: bucket });
      });
      const infinity = { ...labels, le: '+Inf' };
      samples.push({ labels: infinity, value: cell.count, metricName: bucket });
      const sum = cell.sum * this.scale;
      samples.push({ labels: { ...labels }, value: sum, metricName: `${this.name}_sum` });
      samples.push({ labels: { ...labels }, value: cell.count, metricName: `${this.name}_count` });
    }
    return samples;
  }
}

/** Quantiles every summary family reports. */
export const summaryQuantiles: readonly number[] = [0.5, 0.9, 0.99, 0.999];

/** All series of one summary metric (sliding-window quantiles, running sum and count). */
export class SummaryFamily extends CellMetric {
  private readonly cells: SummaryCell[] = [];

  constructor(
    options: FamilyOptions,
    private readonly windowCountMax: number,
  ) {
    super(options, 'summary');
  }

  cell(labels: LabelValues = {}): SummaryCell {
    const cell = new SummaryCell(labels, this.windowCountMax);
    this.cells.push(cell);
    return cell;
  }

  protected samples(): Sample[] {
    const samples: Sample[] = [];
    for (const cell of this.cells) {
      const values = cell.quantiles(summaryQuantiles);
      summaryQuantiles.forEach((quantile, index) => {
        const labels = { ...cell.labels, quantile: String(quantile) };
        samples.push({ labels, value: values[index] ?? NaN });
      });
      const labels = { ...cell.labels };
      samples.push({ labels, value: cell.sum, metricName: `${this.name}_sum` });
      samples.push({ labels: { ...labels }, value: cell.count, metricName: `${this.name}_count` });
    }
    return samples;
  }
}
