// Cheap instrument cells that feed prom-client only when somebody scrapes.
//
// prom-client's own `inc()`, `set()` and `observe()` build label objects, hash them into
// strings and return result objects or closures on every call (an observe costs ~0.3 µs), too
// much for the write path (DESIGN.md §6 budgets all of observability at < 1% overhead). So the
// node updates plain numeric cells here instead: `inc()` and `set()` are one addition or one
// store, `observe()` a scan of the bucket bounds and three additions, and none allocates.
// Counter and gauge families own a prom-client metric whose `collect()` hook, run at scrape
// time, copies the cells into it. A histogram family is a prom-client Histogram whose read
// side is replaced to report the cells' buckets, since prom-client has no way to add counts
// in bulk; the registry renders it like any other histogram.
//
// Invariants: a counter cell only grows (asserted); a cell's labels object is built once, when
// the cell is created, and every cell's series exists in the exposition from then on (at 0), so
// `rate()` works from the first scrape. Families never forget a cell; callers bound how many
// they create (label values come from closed sets or from bounded ids).

import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { assert } from '../core/assert.js';

export type LabelValues = Readonly<Record<string, string>>;

/** A monotonically increasing count, flushed to Prometheus as a delta at scrape time. */
export class CounterCell {
  /** The running total since the process started. */
  value = 0;
  /** How much of `value` has already been handed to prom-client. */
  flushedValue = 0;

  constructor(readonly labels: LabelValues) {}

  inc(amount = 1): void {
    assert(amount >= 0, 'a counter never decreases');
    this.value += amount;
  }
}

/** A value that may go up and down; its latest value is copied out at scrape time. */
export class GaugeCell {
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
}

export interface FamilyOptions {
  registry: Registry;
  name: string;
  help: string;
  labelNames?: readonly string[];
}

/** All cells of one counter metric (one per label combination). */
export class CounterFamily {
  private readonly cells: CounterCell[] = [];
  private readonly metric: Counter<string>;

  constructor(options: FamilyOptions) {
    const cells = this.cells;
    this.metric = new Counter<string>({
      name: options.name,
      help: options.help,
      labelNames: options.labelNames ?? [],
      registers: [options.registry],
      collect(this: Counter<string>) {
        for (const cell of cells) {
          const delta = cell.value - cell.flushedValue;
          if (delta > 0) {
            this.inc(cell.labels, delta);
            cell.flushedValue = cell.value;
          }
        }
      },
    });
  }

  /** Creates a cell; call it once per label combination and keep the result. */
  cell(labels: LabelValues = {}): CounterCell {
    const cell = new CounterCell(labels);
    this.cells.push(cell);
    this.metric.inc(labels, 0);
    return cell;
  }
}

/** All cells of one gauge metric (one per label combination). */
export class GaugeFamily {
  private readonly cells: GaugeCell[] = [];
  private readonly metric: Gauge<string>;

  constructor(options: FamilyOptions) {
    const cells = this.cells;
    this.metric = new Gauge<string>({
      name: options.name,
      help: options.help,
      labelNames: options.labelNames ?? [],
      registers: [options.registry],
      collect(this: Gauge<string>) {
        for (const cell of cells) {
          this.set(cell.labels, cell.value);
        }
      },
    });
  }

  /** Creates a cell; call it once per label combination and keep the result. */
  cell(labels: LabelValues = {}): GaugeCell {
    const cell = new GaugeCell(labels);
    this.cells.push(cell);
    this.metric.set(labels, 0);
    return cell;
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
    readonly upperBounds: readonly number[],
  ) {
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

type HistogramSnapshot = Awaited<ReturnType<Histogram<string>['get']>>;
type HistogramSample = HistogramSnapshot['values'][number];

function histogramSamples(name: string, cell: HistogramCell): HistogramSample[] {
  const samples: HistogramSample[] = [];
  let cumulative = 0;
  cell.upperBounds.forEach((bound, index) => {
    cumulative += cell.bucketCounts[index] ?? 0;
    const labels = { ...cell.labels, le: bound };
    samples.push({ labels, value: cumulative, metricName: `${name}_bucket` });
  });
  const infinity = { ...cell.labels, le: '+Inf' };
  samples.push({ labels: infinity, value: cell.count, metricName: `${name}_bucket` });
  samples.push({ labels: cell.labels, value: cell.sum, metricName: `${name}_sum` });
  samples.push({ labels: cell.labels, value: cell.count, metricName: `${name}_count` });
  return samples;
}

/** A prom-client Histogram that reports HistogramCells instead of its own state. */
class CellHistogram extends Histogram<string> {
  constructor(
    private readonly options: FamilyOptions,
    private readonly cells: readonly HistogramCell[],
    buckets: readonly number[],
  ) {
    super({
      name: options.name,
      help: options.help,
      labelNames: options.labelNames ?? [],
      buckets: [...buckets],
      registers: [options.registry],
    });
  }

  override get(): Promise<HistogramSnapshot> {
    const { name, help } = this.options;
    const values = this.cells.flatMap((cell) => histogramSamples(name, cell));
    // prom-client's typings declare `type` as a numeric enum that does not exist at run time;
    // the registry actually reads and prints the string.
    const type = 'histogram' as unknown as HistogramSnapshot['type'];
    return Promise.resolve({
      name,
      help,
      type,
      aggregator: 'sum',
      collect: () => undefined,
      values,
    });
  }

  /** The registry renders from this when present; the cells' samples need no reshaping. */
  getForPromString(): Promise<HistogramSnapshot> {
    return this.get();
  }
}

/** All cells of one histogram metric (one per label combination), sharing bucket bounds. */
export class HistogramFamily {
  private readonly cells: HistogramCell[] = [];
  private readonly upperBounds: readonly number[];
  private readonly metric: Histogram<string>;

  constructor(options: FamilyOptions & { upperBounds: readonly number[] }) {
    const bounds = options.upperBounds;
    assert(bounds.length > 0, 'a histogram needs at least one bucket');
    for (let index = 1; index < bounds.length; index += 1) {
      assert((bounds[index - 1] ?? 0) < (bounds[index] ?? 0), 'bucket bounds must increase');
    }
    this.upperBounds = [...bounds];
    this.metric = new CellHistogram(options, this.cells, this.upperBounds);
  }

  /** Creates a cell; call it once per label combination and keep the result. */
  cell(labels: LabelValues = {}): HistogramCell {
    const cell = new HistogramCell(labels, this.upperBounds);
    this.cells.push(cell);
    return cell;
  }
}
