// Trace context in the SDK: each call may join the caller's OpenTelemetry trace. The caller's
// context is the call's `traceContext` option, else the active context (whatever context
// manager the application registered; none means no parent). With a `tracer` in the connect
// options, the call gets its own client span, `kmb.client.<operation>`, child of the caller's;
// without one, the caller's span itself is the parent. That span's context travels to the
// server as a W3C traceparent on the request or query, and the server's kmb.write / kmb.query
// spans become its children.
//
// Invariants: nothing is sent when there is no valid span context (no tracer and no caller
// span); the SDK never registers anything global; a client span ends exactly once, with the
// call, marked as an error carrying the KMB_ERR_* code when the call fails.

import { context, isSpanContextValid, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import type { Attributes, Context, SpanContext, Tracer } from '@opentelemetry/api';
import type { TraceParent } from '../core/trace_parent.js';

/** Per-call tracing option, accepted by writes and reads. */
export interface TraceOptions {
  /**
   * The OpenTelemetry context whose span this call belongs to (e.g.
   * `trace.setSpan(context.active(), span)`). Default: the active context.
   */
  readonly traceContext?: Context;
}

function traceParentOf(spanContext: SpanContext | undefined): TraceParent | undefined {
  if (spanContext === undefined || !isSpanContextValid(spanContext)) return undefined;
  return {
    traceId: spanContext.traceId,
    spanId: spanContext.spanId,
    flags: spanContext.traceFlags & 0xff,
  };
}

function codeOf(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : 'KMB_ERR_INTERNAL';
}

/** Runs SDK calls inside client spans (with a tracer) or the caller's span (without). */
export class ClientTracing {
  constructor(private readonly tracer: Tracer | undefined) {}

  /**
   * Runs `work` with the traceparent to send (undefined: send none). Without a tracer this is a
   * plain call, not an async function: an SDK call already passes through several promises, and
   * one more per call showed in a pipelined client's profile.
   */
  run<T>(
    operation: string,
    attributes: Attributes,
    options: TraceOptions | undefined,
    work: (traceParent: TraceParent | undefined) => Promise<T>,
  ): Promise<T> {
    const parent = options?.traceContext ?? context.active();
    if (this.tracer === undefined) return work(traceParentOf(trace.getSpanContext(parent)));
    return this.runInSpan(this.tracer, operation, attributes, parent, work);
  }

  private async runInSpan<T>(
    tracer: Tracer,
    operation: string,
    attributes: Attributes,
    parent: Context,
    work: (traceParent: TraceParent | undefined) => Promise<T>,
  ): Promise<T> {
    const span = tracer.startSpan(
      `kmb.client.${operation}`,
      { kind: SpanKind.CLIENT, attributes },
      parent,
    );
    try {
      return await work(traceParentOf(span.spanContext()));
    } catch (error) {
      const code = codeOf(error);
      span.setAttribute('error.code', code);
      span.setStatus({ code: SpanStatusCode.ERROR, message: code });
      throw error;
    } finally {
      span.end();
    }
  }
}
