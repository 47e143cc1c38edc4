// OTLP push of metrics: each export reads every instrument (metric_snapshot.ts, the spec's
// original names), builds the OpenTelemetry SDK's ResourceMetrics data model from it, and hands
// that to the official OTLP/HTTP exporter (JSON to `${endpoint}/v1/metrics`).
//
// Why not a MeterProvider with observable instruments: our histograms are already aggregated
// (per-bucket counts, sum, count) and the SDK has no observable histogram, so it could only carry
// them by re-observing values it does not have. Building ResourceMetrics ourselves carries the
// node's own buckets exactly, and the SDK's exporter still does the encoding, the HTTP transport,
// retries of retryable statuses and the timeout.
//
// Temporality is cumulative for counters and histograms (start time = process start): a lost or
// failed push loses nothing, the next one carries the totals, and collectors convert to delta
// when a backend wants it. Gauges are sent as gauges. Invariants: one export at a time (the
// exporter's concurrency limit is 1 and ExportLoop skips overlapping ticks); each request is
// bounded by `timeoutMs`; the node's write path never touches this file.

import { ValueType } from '@opentelemetry/api';
import type { Attributes, HrTime } from '@opentelemetry/api';
import { ExportResultCode, millisToHrTime } from '@opentelemetry/core';
import { OTLPMetricExporter } from '@opentelemetry/exporter-metrics-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import type { Resource } from '@opentelemetry/resources';
import { AggregationTemporality, DataPointType } from '@opentelemetry/sdk-metrics';
import type { MetricData, ResourceMetrics } from '@opentelemetry/sdk-metrics';
import type { PushExporter } from './export_loop.js';
import type { MetricSnapshot, MetricSource } from './metric_snapshot.js';

export interface OtlpMetricsOptions {
  /** The collector's base URL; metrics go to `${endpoint}/v1/metrics`. */
  readonly endpoint: string;
  readonly source: MetricSource;
  readonly serviceName: string;
  readonly serviceVersion: string;
  /** The replica index, as `service.instance.id`. */
  readonly nodeId: number;
  /** Per-request timeout. */
  readonly timeoutMs: number;
}

export interface ResourceMetricsTimes {
  /** Start of the cumulative period (process start). */
  readonly startTime: HrTime;
  /** When the values were read. */
  readonly endTime: HrTime;
}

/** The OTLP instrumentation scope of every exported metric. */
export const otlpScopeName = 'kimberlite';

/**
 * The URL metrics are posted to: `${endpoint}/v1/metrics` for a collector's base URL (with or
 * without a trailing slash); an endpoint that already ends in /v1/metrics is used as it is.
 */
export function otlpMetricsUrl(endpoint: string): string {
  const base = endpoint.replace(/\/+$/, '');
  return base.endsWith('/v1/metrics') ? base : `${base}/v1/metrics`;
}

function metricData(snapshot: MetricSnapshot, times: ResourceMetricsTimes): MetricData | null {
  const descriptor = {
    name: snapshot.name,
    description: snapshot.help,
    unit: snapshot.unit,
    valueType: ValueType.DOUBLE,
  };
  const aggregationTemporality = AggregationTemporality.CUMULATIVE;
  const point = <T>(attributes: Attributes, value: T) => ({ ...times, attributes, value });
  if (snapshot.kind === 'histogram') {
    if (snapshot.histograms.length === 0) return null;
    const dataPoints = snapshot.histograms.map((series) =>
      point(series.labels, {
        buckets: { boundaries: [...series.bounds], counts: [...series.bucketCounts] },
        sum: series.sum,
        count: series.count,
      }),
    );
    return {
      descriptor,
      aggregationTemporality,
      dataPointType: DataPointType.HISTOGRAM,
      dataPoints,
    };
  }
  if (snapshot.values.length === 0) return null;
  const dataPoints = snapshot.values.map((series) => point(series.labels, series.value));
  if (snapshot.kind === 'counter') {
    const dataPointType = DataPointType.SUM;
    return { descriptor, aggregationTemporality, dataPointType, dataPoints, isMonotonic: true };
  }
  return { descriptor, aggregationTemporality, dataPointType: DataPointType.GAUGE, dataPoints };
}

/** The SDK data model for one read of the instruments. Pure: no clock, no I/O. */
export function toResourceMetrics(
  snapshots: readonly MetricSnapshot[],
  resource: Resource,
  scopeVersion: string,
  times: ResourceMetricsTimes,
): ResourceMetrics {
  const metrics: MetricData[] = [];
  for (const snapshot of snapshots) {
    const data = metricData(snapshot, times);
    if (data !== null) metrics.push(data);
  }
  return {
    resource,
    scopeMetrics: [{ scope: { name: otlpScopeName, version: scopeVersion }, metrics }],
  };
}

/** Pushes every instrument to an OTLP/HTTP collector, one export per call. */
export class OtlpMetricsExporter implements PushExporter {
  readonly name = 'otlp';
  private readonly exporter: OTLPMetricExporter;
  private readonly resource: Resource;
  private readonly startTime: HrTime;

  constructor(private readonly options: OtlpMetricsOptions) {
    this.exporter = new OTLPMetricExporter({
      url: otlpMetricsUrl(options.endpoint),
      timeoutMillis: options.timeoutMs,
      concurrencyLimit: 1,
    });
    this.resource = resourceFromAttributes({
      'service.name': options.serviceName,
      'service.version': options.serviceVersion,
      'service.instance.id': String(options.nodeId),
    });
    this.startTime = millisToHrTime(performance.timeOrigin);
  }

  async exportOnce(): Promise<void> {
    const snapshots = await this.options.source();
    const endTime = millisToHrTime(performance.timeOrigin + performance.now());
    const times = { startTime: this.startTime, endTime };
    const data = toResourceMetrics(snapshots, this.resource, this.options.serviceVersion, times);
    await new Promise<void>((resolve, reject) => {
      this.exporter.export(data, (result) => {
        if (result.code === ExportResultCode.SUCCESS) resolve();
        else reject(result.error ?? new Error('OTLP metrics export failed'));
      });
    });
  }

  async close(): Promise<void> {
    await this.exporter.shutdown();
  }
}
