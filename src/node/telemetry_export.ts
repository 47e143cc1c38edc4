// Starts the push exporters the [telemetry] section asks for — OTLP metrics when otlp_endpoint is
// set, StatsD when statsd_address is set — each on its own unref'd timer of export_interval_secs,
// both reading the node's one set of instruments (the registries /metrics renders), and stops them
// with a final export on shutdown. With neither key set it starts nothing and costs nothing.
//
// Failures (a collector down, a timeout, an overlapping export skipped) are counted in
// kmb_telemetry_export_errors_total{exporter="otlp"|"statsd"} and logged rate-limited by the
// export loop; the node never waits on an exporter except during its final, time-bounded flush.

import { readFileSync } from 'node:fs';
import { Counter } from 'prom-client';
import type { Registry } from 'prom-client';
import { ExportLoop } from '../observability/export_loop.js';
import type { PushExporter } from '../observability/export_loop.js';
import type { Logger } from '../observability/logger.js';
import { registrySource } from '../observability/metric_snapshot.js';
import { OtlpMetricsExporter } from '../observability/otlp_metrics.js';
import { StatsdExporter } from '../observability/statsd_export.js';
import { parseHostPort } from './config.js';
import type { TelemetryConfig } from './config.js';

export interface TelemetryExportOptions {
  readonly telemetry: TelemetryConfig;
  readonly nodeId: number;
  /** Every registry /metrics renders (Metrics.registries); read anew on every export. */
  readonly registries: () => readonly Registry[];
  /** Where kmb_telemetry_export_errors_total is registered (the kmb_* registry). */
  readonly errorRegistry: Registry;
  readonly logger: Logger;
  /** Bound on the final export at stop (default 2000 ms). */
  readonly stopTimeoutMs?: number;
}

export interface TelemetryExport {
  readonly loops: readonly ExportLoop[];
  /** Stops every exporter after a final export; resolves within the stop timeout. */
  stop(): Promise<void>;
}

/** An OTLP request may take at most this long (and never longer than the interval). */
const otlpTimeoutMsMax = 10_000;

/** The package version, for service.version and the instrumentation scope. */
export function serviceVersion(): string {
  const path = new URL('../../package.json', import.meta.url);
  const parsed = JSON.parse(readFileSync(path, 'utf8')) as { version?: unknown };
  return typeof parsed.version === 'string' ? parsed.version : '0.0.0';
}

function exportersOf(options: TelemetryExportOptions): PushExporter[] {
  const { telemetry } = options;
  const intervalMs = telemetry.export_interval_secs * 1000;
  const source = registrySource(options.registries);
  const exporters: PushExporter[] = [];
  if (telemetry.otlp_endpoint !== undefined) {
    exporters.push(
      new OtlpMetricsExporter({
        endpoint: telemetry.otlp_endpoint,
        source,
        serviceName: telemetry.service_name,
        serviceVersion: serviceVersion(),
        nodeId: options.nodeId,
        timeoutMs: Math.min(otlpTimeoutMsMax, intervalMs),
      }),
    );
  }
  if (telemetry.statsd_address !== undefined) {
    const { host, port } = parseHostPort(telemetry.statsd_address);
    exporters.push(new StatsdExporter({ host, port, prefix: telemetry.statsd_prefix, source }));
  }
  return exporters;
}

/** Starts the configured push exporters (possibly none). */
export function startTelemetryExport(options: TelemetryExportOptions): TelemetryExport {
  const exporters = exportersOf(options);
  if (exporters.length === 0) return { loops: [], stop: () => Promise.resolve() };
  const failures = new Counter({
    name: 'kmb_telemetry_export_errors_total',
    help: 'Push exports (OTLP metrics, StatsD) that failed or were skipped, by exporter.',
    labelNames: ['exporter'],
    registers: [options.errorRegistry],
  });
  const logger = options.logger;
  const intervalMs = options.telemetry.export_interval_secs * 1000;
  const loops = exporters.map((exporter) => {
    failures.inc({ exporter: exporter.name }, 0);
    return new ExportLoop({
      exporter,
      intervalMs,
      logger,
      onFailure: (name) => failures.inc({ exporter: name }),
      ...(options.stopTimeoutMs === undefined ? {} : { stopTimeoutMs: options.stopTimeoutMs }),
    });
  });
  for (const loop of loops) loop.start();
  logger.info('Telemetry export started', {
    otlp_endpoint: options.telemetry.otlp_endpoint ?? null,
    statsd_address: options.telemetry.statsd_address ?? null,
    export_interval_secs: options.telemetry.export_interval_secs,
  });
  return {
    loops,
    stop: async () => {
      await Promise.all(loops.map((loop) => loop.stop()));
    },
  };
}
