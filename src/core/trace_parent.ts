// A W3C trace context (the fields of the `traceparent` header): how a caller's span becomes the
// parent of the spans made for its request. It is a core type because every layer passes it
// along: the SDK makes it, the client protocol carries it, the node and the tracer read it.
// Invariant of a valid one: ids are lower-case hex of their exact length and never all zero,
// and flags is one byte (W3C Trace Context, "traceparent").

/** A trace context as carried with a request or a query. */
export interface TraceParent {
  /** 32 hex digits (16 bytes). */
  readonly traceId: string;
  /** 16 hex digits (8 bytes): the caller's span. */
  readonly spanId: string;
  /** The trace flags byte; bit 0 means sampled. */
  readonly flags: number;
}

const hexPattern = { trace: /^[0-9a-f]{32}$/, span: /^[0-9a-f]{16}$/ } as const;

/** True for ids a trace context may carry: the right length of lowercase hex, not all zero. */
export function isValidTraceParent(value: TraceParent): boolean {
  return (
    hexPattern.trace.test(value.traceId) &&
    hexPattern.span.test(value.spanId) &&
    !/^0+$/.test(value.traceId) &&
    !/^0+$/.test(value.spanId) &&
    Number.isInteger(value.flags) &&
    value.flags >= 0 &&
    value.flags <= 0xff
  );
}
