// The node's OpenTelemetry tracer: spans are batched (BatchSpanProcessor) and sent over
// OTLP/HTTP (JSON) to `[telemetry] tracing_endpoint`. This file only builds and tears down
// the pipeline and converts W3C trace contexts; which spans a node makes, and when, is
// node/node_tracing.ts.
//
// Context is passed explicitly: every span is started with a parent Context built here from a
// SpanContext (ROOT_CONTEXT plus that span), never from an active context, so no context
// manager (async hooks, AsyncLocalStorage) is installed and nothing global is registered — the
// provider is never made the global one. When tracing is off, nothing here is constructed.
//
// Invariants: spans queued for export are bounded (queueSpanCountMax; the processor drops the
// excess and counts nothing else); an export failure never throws into the node, it is logged
// as a rate-limited warning; shutdown() flushes what is queued, within flushTimeoutMs.

import { ROOT_CONTEXT, SpanKind, trace, TraceFlags } from '@opentelemetry/api';
import type { Attributes, Context, Link, Span, SpanContext, Tracer } from '@opentelemetry/api';
import { ExportResultCode } from '@opentelemetry/core';
import type { ExportResult } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, BatchSpanProcessor } from '@opentelemetry/sdk-trace-base';
import type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace-base';
import type { TraceParent } from '../core/trace_parent.js';
import type { Logger } from './logger.js';

export { SpanKind } from '@opentelemetry/api';
export type { Attributes, Link, Span, SpanContext } from '@opentelemetry/api';

/** Bounds and periods of the export pipeline (HOUSE_RULES §7). */
export const tracingLimits = {
  /** Ended spans waiting for export; beyond it new ones are dropped by the processor. */
  queueSpanCountMax: 4096,
  /** Spans in one OTLP request. */
  exportBatchSpanCountMax: 512,
  /** How long finished spans may wait before a batch is sent. */
  scheduledDelayMs: 1000,
  /** One export request's time limit. */
  exportTimeoutMs: 10_000,
  /** How long shutdown waits for the last batches. */
  flushTimeoutMs: 5_000,
  /** Between two "export failed" warnings. */
  failureWarnIntervalMs: 60_000,
} as const;

export interface TracingOptions {
  /** The OTLP/HTTP traces URL; a URL without a path gets /v1/traces. */
  readonly endpoint: string;
  /** service.name on every span's resource. */
  readonly serviceName: string;
  /** The replica index, as service.instance.id and on every span (node_id). */
  readonly nodeId: number;
  readonly logger: Logger;
  /** Tests pass an exporter; default OTLP/HTTP to `endpoint`. */
  readonly exporter?: SpanExporter;
  /** Tests shorten the batch delay. */
  readonly scheduledDelayMs?: number;
}

/** The traces URL for an endpoint: the URL itself, or <origin>/v1/traces when it has no path. */
export function tracesUrl(endpoint: string): string {
  const url = new URL(endpoint);
  if (url.pathname === '' || url.pathname === '/') url.pathname = '/v1/traces';
  return url.toString();
}

/** A remote parent's span context from a client's trace context. */
export function spanContextOf(parent: TraceParent): SpanContext {
  return {
    traceId: parent.traceId,
    spanId: parent.spanId,
    traceFlags: parent.flags & TraceFlags.SAMPLED,
    isRemote: true,
  };
}

/** A client's trace context for a span (what a caller sends on to the next hop). */
export function traceParentOf(span: Span): TraceParent {
  const { traceId, spanId, traceFlags } = span.spanContext();
  return { traceId, spanId, flags: traceFlags };
}

/** Logs failed exports (rate-limited) and passes every call through to the real exporter. */
class ReportingExporter implements SpanExporter {
  constructor(
    private readonly inner: SpanExporter,
    private readonly logger: Logger,
  ) {}

  export(spans: ReadableSpan[], done: (result: ExportResult) => void): void {
    this.inner.export(spans, (result) => {
      if (result.code !== ExportResultCode.SUCCESS) {
        this.logger.warnRateLimited(
          'trace-export',
          tracingLimits.failureWarnIntervalMs,
          'Trace export failed',
          { spans: spans.length, reason: result.error?.message ?? 'unknown' },
        );
      }
      done(result);
    });
  }

  shutdown(): Promise<void> {
    return this.inner.shutdown();
  }

  forceFlush(): Promise<void> {
    return this.inner.forceFlush?.() ?? Promise.resolve();
  }
}

export interface StartSpanOptions {
  readonly kind?: SpanKind;
  /** The parent: a local span, a remote span context, or none (a new trace). */
  readonly parent?: Span | SpanContext | null;
  readonly attributes?: Attributes;
  readonly links?: readonly Link[];
  /** Epoch milliseconds; default now. Pass the end time of the span this one follows. */
  readonly startTime?: number;
}

/** One node's tracer and export pipeline. Exists only when tracing is enabled. */
export class Tracing {
  private readonly provider: BasicTracerProvider;
  private readonly tracer: Tracer;
  private readonly nodeId: number;

  constructor(options: TracingOptions) {
    const exporter =
      options.exporter ??
      new OTLPTraceExporter({
        url: tracesUrl(options.endpoint),
        timeoutMillis: tracingLimits.exportTimeoutMs,
      });
    const processor = new BatchSpanProcessor(new ReportingExporter(exporter, options.logger), {
      maxQueueSize: tracingLimits.queueSpanCountMax,
      maxExportBatchSize: tracingLimits.exportBatchSpanCountMax,
      scheduledDelayMillis: options.scheduledDelayMs ?? tracingLimits.scheduledDelayMs,
      exportTimeoutMillis: tracingLimits.exportTimeoutMs,
    });
    this.provider = new BasicTracerProvider({
      resource: resourceFromAttributes({
        'service.name': options.serviceName,
        'service.instance.id': String(options.nodeId),
      }),
      spanProcessors: [processor],
      forceFlushTimeoutMillis: tracingLimits.flushTimeoutMs,
    });
    this.tracer = this.provider.getTracer('kimberlite-ts');
    this.nodeId = options.nodeId;
  }

  /** Starts a span; node_id is added to its attributes. */
  startSpan(name: string, options: StartSpanOptions = {}): Span {
    const parent = options.parent ?? null;
    let context: Context = ROOT_CONTEXT;
    if (parent !== null) {
      context =
        'spanContext' in parent
          ? trace.setSpan(ROOT_CONTEXT, parent)
          : trace.setSpanContext(ROOT_CONTEXT, parent);
    }
    return this.tracer.startSpan(
      name,
      {
        kind: options.kind ?? SpanKind.INTERNAL,
        attributes: { node_id: this.nodeId, ...options.attributes },
        ...(options.links === undefined ? {} : { links: [...options.links] }),
        ...(options.startTime === undefined ? {} : { startTime: options.startTime }),
      },
      context,
    );
  }

  /**
   * Sends every ended span now (the processor otherwise sends on its schedule). Never rejects:
   * a failed export was already logged by the reporting exporter.
   */
  forceFlush(): Promise<void> {
    return this.provider.forceFlush().catch(() => undefined);
  }

  /**
   * Flushes and stops the pipeline, waiting at most flushTimeoutMs (a collector that does not
   * answer must not hold up a stop); spans ended afterwards are dropped. Never rejects.
   */
  async shutdown(): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const limit = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, tracingLimits.flushTimeoutMs);
      timer.unref();
    });
    await Promise.race([this.provider.shutdown().catch(() => undefined), limit]);
    clearTimeout(timer);
  }
}
