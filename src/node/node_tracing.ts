// The node's spans, made from what the shell already sees: client requests and queries, and
// the replica's effects (journal appends, replies, rejections, typed events). The node holds a
// NodeTracing only when tracing is on, and calls it behind one null check, so with tracing off
// no span, attribute object or context is ever allocated on its paths.
//
// The spans (monitoring spec "Trace Spans"):
// - kmb.write (server): a client request, from its arrival to its reply or rejection. Its parent
//   is the client's span when the request carried a trace context.
// - kmb.consensus.prepare: one prepare on the leader, from the moment it is journaled and sent
//   to the backups until a quorum has acknowledged it (the first sign of its commit: the apply
//   of its first request). kmb.consensus.commit follows it: the commit, the apply of every
//   request and the replies, until the replica reports the op committed. Both are children of
//   a kmb.write. A prepare carries a batch of many clients' requests; the rule: its spans'
//   parent is the batch's first request that has an open kmb.write, and every other request of
//   the batch is a span link; each of those kmb.write spans gets the op as an attribute. A
//   kmb.write whose op is still committing ends right after its commit span.
// - kmb.query (server): a read, from arrival to result or error.
// - kmb.repair: one repair round — a request to a peer for a range of ops or a single op —
//   until the last op asked for is repaired, the range is committed anyway, or the round is
//   asked again (a retry or another peer: outcome "retried").
// - kmb.view_change: from the first view change started while normal to the view change that
//   ends in normal status, however many views it took (attempts).
//
// Invariants: every map of open spans is bounded (openSpanCountMax); when one is full its
// oldest span is ended with outcome "evicted". Every span ends exactly once: a view change ends
// the open write and consensus spans (outcome "view_change"), stop() ends everything.

import { SpanStatusCode } from '@opentelemetry/api';
import type { ClientId } from '../core/types.js';
import type { TraceParent } from '../core/trace_parent.js';
import { decodeCommand, decodeResult } from '../kernel/kernel.js';
import type { Query, RequestMessage } from '../net/client_protocol.js';
import type { TelemetryConfig } from './config.js';
import type { Logger } from '../observability/logger.js';
import { SpanKind, spanContextOf, Tracing } from '../observability/tracing.js';
import type { Attributes, Link, Span } from '../observability/tracing.js';
import type { Effect, ReplicaEvent, Reply } from '../vsr/message.js';

/** Where a node sends spans (from [telemetry]); null when tracing is off. */
export interface NodeTracingConfig {
  readonly endpoint: string;
  readonly serviceName: string;
  /**
   * Share of requests without a sampled trace context from their caller that are traced
   * (0..1). A request whose SDK caller sends a sampled context is always traced.
   */
  readonly sampleRatio: number;
}

/** The tracing part of a node's configuration: null unless enabled with an endpoint. */
export function tracingConfigOf(telemetry: TelemetryConfig): NodeTracingConfig | null {
  if (!telemetry.tracing_enabled || telemetry.tracing_endpoint === undefined) return null;
  return {
    endpoint: telemetry.tracing_endpoint,
    serviceName: telemetry.service_name,
    sampleRatio: telemetry.tracing_sample_ratio,
  };
}

export const nodeTracingLimits = {
  /** Open spans of one kind (writes, prepares, repair rounds) a node keeps. */
  openSpanCountMax: 4096,
} as const;

interface OpenWrite {
  readonly span: Span;
  readonly requestNumber: number;
  /** The op its reply named, once replied (it may still wait for its commit span to end). */
  repliedOp: number | null;
}

interface OpenOp {
  readonly op: number;
  /** The kmb.write its consensus spans hang under, if any. */
  readonly parent: Span | null;
  readonly links: readonly Link[];
  readonly clients: readonly ClientId[];
  prepare: Span | null;
  commit: Span | null;
}

interface RepairRound {
  readonly span: Span;
  readonly request: 'range' | 'prepare';
  readonly opFirst: number;
  readonly opLast: number;
  repairedCount: number;
}

interface ViewChangeSpan {
  readonly span: Span;
  attemptCount: number;
}

/** Where a node's span calls go when tracing is on. */
export class NodeTracing {
  private readonly writes = new Map<ClientId, OpenWrite>();
  private readonly ops = new Map<number, OpenOp>();
  private readonly repairs = new Map<string, RepairRound>();
  private viewChange: ViewChangeSpan | null = null;
  /**
   * Traced writes not yet found in a prepare. A prepare's requests (carried by its 'prepared'
   * event, never decoded again) are looked at only while this is not empty: with sampling, most
   * prepares carry no traced write, and decoding every batch again (its requests, client ids)
   * was most of tracing's cost.
   */
  private readonly unassigned = new Set<ClientId>();

  constructor(
    readonly tracing: Tracing,
    private readonly view: () => number,
    private readonly sampleRatio = 1,
    private readonly random: () => number = Math.random,
  ) {}

  /**
   * Whether to trace a request or query: the caller's decision when it sent a trace context
   * (W3C flags bit 0), otherwise `sampleRatio` of them at random. An unsampled request creates
   * no span at all, and neither does a prepare none of whose requests is traced, so the cost
   * of tracing scales with the ratio.
   */
  private sampled(traceParent: TraceParent | undefined): boolean {
    if (traceParent !== undefined) return (traceParent.flags & 1) === 1;
    return this.sampleRatio >= 1 || this.random() < this.sampleRatio;
  }

  /** A client request reached this node (after decoding, before the replica sees it). */
  onRequest(request: RequestMessage, method: string): void {
    const open = this.writes.get(request.clientId);
    if (open !== undefined && open.requestNumber === request.requestNumber) return; // a resend
    if (open !== undefined) {
      this.writes.delete(request.clientId);
      endSpan(open.span, 'superseded');
    }
    if (!this.sampled(request.traceParent)) return;
    const attributes: Attributes = {
      view: this.view(),
      client_id: request.clientId,
      request_number: request.requestNumber,
      'kmb.operation': method,
      ...commandAttributes(request),
    };
    const span = this.tracing.startSpan('kmb.write', {
      kind: SpanKind.SERVER,
      parent: parentOf(request.traceParent),
      attributes,
    });
    const write = { span, requestNumber: request.requestNumber, repliedOp: null };
    const evicted = boundedSet(this.writes, request.clientId, write);
    if (evicted !== undefined) endSpan(evicted.span, 'evicted');
    this.unassigned.add(request.clientId);
  }

  /** A query reached this node; end the span with endQuery. */
  startQuery(query: Query, traceParent: TraceParent | undefined, consistency: string): Span | null {
    if (!this.sampled(traceParent)) return null;
    const attributes: Attributes = { view: this.view(), 'kmb.query': query.kind, consistency };
    if (query.kind === 'read_stream') {
      attributes['tenant_id'] = query.tenantId;
      attributes['stream_id'] = query.streamId;
      attributes['limit'] = query.limit;
    }
    if (query.kind === 'list_streams') attributes['tenant_id'] = query.tenantId;
    return this.tracing.startSpan('kmb.query', {
      kind: SpanKind.SERVER,
      parent: parentOf(traceParent),
      attributes,
    });
  }

  /** Ends a query span: ok, or with the error code it was answered with. */
  endQuery(span: Span, errorCode: string | null): void {
    if (errorCode !== null) failSpan(span, errorCode);
    span.end();
  }

  /** Every effect the node performs, in order, after performing it. */
  onEffect(effect: Effect<unknown>): void {
    switch (effect.kind) {
      case 'reply':
        // Most replies answer an untraced write: with no write open there is nothing to look up.
        if (this.writes.size > 0) this.onReply(effect.reply);
        break;
      case 'reject': {
        if (this.writes.size === 0) break;
        const open = this.writes.get(effect.clientId);
        if (open === undefined || open.requestNumber !== effect.requestNumber) break;
        this.writes.delete(effect.clientId);
        failSpan(open.span, effect.code);
        open.span.end();
        break;
      }
      case 'event':
        this.onEvent(effect.event);
        break;
      default:
        break;
    }
  }

  private onEvent(event: ReplicaEvent<unknown>): void {
    switch (event.kind) {
      case 'prepared':
        this.onPrepared(event);
        break;
      case 'applied':
        if (this.ops.size > 0) this.onQuorum(event.op);
        break;
      case 'committed':
        if (!event.replay && this.ops.size > 0) this.onCommitted(event.op);
        break;
      case 'view_change_started':
        this.onViewChangeStarted(event.oldView, event.view, event.reason);
        break;
      case 'view_change_finished':
        this.onViewChangeFinished(event);
        break;
      case 'repair_requested':
        this.onRepairRequested(event);
        break;
      case 'repair_completed':
        this.onRepairCompleted(event.op, event.how);
        break;
      default:
        break;
    }
  }

  private onPrepared(event: Extract<ReplicaEvent<unknown>, { kind: 'prepared' }>): void {
    const { op, requestCount, bodySizeBytes } = event;
    if (this.unassigned.size === 0) return; // No traced write can be in this batch.
    let parent: Span | null = null;
    const links: Link[] = [];
    const clients: ClientId[] = [];
    for (const request of event.requests) {
      const open = this.writes.get(request.clientId);
      if (open === undefined || open.requestNumber !== request.requestNumber) continue;
      this.unassigned.delete(request.clientId);
      open.span.setAttributes({ op, batch_request_count: requestCount });
      clients.push(request.clientId);
      if (parent === null) parent = open.span;
      else links.push({ context: open.span.spanContext() });
    }
    // Writes that ended without reaching a prepare (rejected, superseded, evicted) leave here.
    for (const clientId of this.unassigned) {
      if (!this.writes.has(clientId)) this.unassigned.delete(clientId);
    }
    if (parent === null) return; // None of this batch's writes is traced.
    const attributes = { view: this.view(), op, request_count: requestCount };
    const span = this.tracing.startSpan('kmb.consensus.prepare', {
      parent,
      links,
      attributes: { ...attributes, body_size_bytes: bodySizeBytes },
    });
    const evicted = boundedSet(this.ops, op, {
      op,
      parent,
      links,
      clients,
      prepare: span,
      commit: null,
    });
    if (evicted !== undefined) this.endOp(evicted, 'evicted');
  }

  /** The first request of `op` was applied: a quorum acknowledged it; the commit phase starts. */
  private onQuorum(op: number): void {
    const open = this.ops.get(op);
    if (open === undefined || open.prepare === null) return;
    const nowMs = epochMs();
    open.prepare.end(nowMs);
    open.prepare = null;
    open.commit = this.tracing.startSpan('kmb.consensus.commit', {
      parent: open.parent,
      links: open.links,
      startTime: nowMs,
      attributes: { view: this.view(), op, request_count: open.clients.length },
    });
  }

  private onReply(reply: Reply): void {
    const open = this.writes.get(reply.clientId);
    if (open === undefined || open.requestNumber !== reply.requestNumber) return;
    open.span.setAttribute('op', reply.op);
    open.repliedOp = reply.op;
    const code = kernelErrorCode(reply.result);
    if (code !== null) failSpan(open.span, code);
    // A write whose op is still committing ends with it (onCommitted), after its child spans.
    if ((this.ops.get(reply.op)?.commit ?? null) !== null) return;
    this.writes.delete(reply.clientId);
    open.span.end();
  }

  private onCommitted(op: number): void {
    const open = this.ops.get(op);
    if (open === undefined) return;
    this.ops.delete(op);
    // One time for all: each span reads its own clock anchor, which may differ by a millisecond.
    const nowMs = epochMs();
    open.prepare?.end(nowMs);
    open.commit?.end(nowMs);
    for (const clientId of open.clients) {
      const write = this.writes.get(clientId);
      if (write === undefined || write.repliedOp !== op) continue;
      this.writes.delete(clientId);
      write.span.end(nowMs);
    }
  }

  private onViewChangeStarted(oldView: number, view: number, reason: string): void {
    this.endAllWrites('view_change');
    if (this.viewChange !== null) {
      this.viewChange.attemptCount += 1;
      this.viewChange.span.setAttribute('view', view);
      return;
    }
    const span = this.tracing.startSpan('kmb.view_change', {
      attributes: { old_view: oldView, view, reason },
    });
    this.viewChange = { span, attemptCount: 1 };
  }

  private onViewChangeFinished(
    event: Extract<ReplicaEvent<unknown>, { kind: 'view_change_finished' }>,
  ): void {
    const open = this.viewChange;
    if (open === null) return;
    this.viewChange = null;
    open.span.setAttributes({
      view: event.view,
      leader: event.primary,
      op: event.op,
      commit: event.commit,
      attempts: open.attemptCount,
    });
    open.span.end();
  }

  private onRepairRequested(
    event: Extract<ReplicaEvent<unknown>, { kind: 'repair_requested' }>,
  ): void {
    const key = `${event.request}:${event.opFirst}`;
    const previous = this.repairs.get(key);
    if (previous !== undefined) {
      this.repairs.delete(key);
      endSpan(previous.span, 'retried');
    }
    const span = this.tracing.startSpan('kmb.repair', {
      attributes: {
        view: this.view(),
        'repair.request': event.request,
        op_first: event.opFirst,
        op_last: event.opLast,
        target: event.target,
      },
    });
    const round = { span, request: event.request, opFirst: event.opFirst, opLast: event.opLast };
    const evicted = boundedSet(this.repairs, key, { ...round, repairedCount: 0 });
    if (evicted !== undefined) endSpan(evicted.span, 'evicted');
  }

  private onRepairCompleted(op: number, how: string): void {
    for (const [key, round] of this.repairs) {
      if (op < round.opFirst || op > round.opLast) continue;
      round.repairedCount += 1;
      if (op < round.opLast) continue;
      this.repairs.delete(key);
      round.span.setAttributes({ repaired_count: round.repairedCount, how });
      endSpan(round.span, 'repaired');
    }
  }

  /** Ends every open span (the node stops), then flushes the exporter. */
  async shutdown(): Promise<void> {
    this.endAllWrites('shutdown');
    for (const round of this.repairs.values()) endSpan(round.span, 'shutdown');
    this.repairs.clear();
    if (this.viewChange !== null) endSpan(this.viewChange.span, 'shutdown');
    this.viewChange = null;
    await this.tracing.shutdown();
  }

  private endAllWrites(outcome: string): void {
    for (const open of this.ops.values()) this.endOp(open, outcome);
    this.ops.clear();
    for (const write of this.writes.values()) endSpan(write.span, outcome);
    this.writes.clear();
    this.unassigned.clear();
  }

  private endOp(open: OpenOp, outcome: string): void {
    if (open.prepare !== null) endSpan(open.prepare, outcome);
    if (open.commit !== null) endSpan(open.commit, outcome);
  }
}

/**
 * The node's tracing, or null when it is off: the injected Tracing (tests), else one built
 * from the node's configuration.
 */
export function createNodeTracing(options: {
  readonly config: NodeTracingConfig | null | undefined;
  readonly tracing: Tracing | undefined;
  readonly nodeId: number;
  readonly logger: Logger;
  readonly view: () => number;
}): NodeTracing | null {
  const config = options.config;
  if (options.tracing !== undefined) {
    return new NodeTracing(options.tracing, options.view, config?.sampleRatio ?? 1);
  }
  if (config === null || config === undefined) return null;
  const tracing = new Tracing({
    endpoint: config.endpoint,
    serviceName: config.serviceName,
    nodeId: options.nodeId,
    logger: options.logger,
  });
  return new NodeTracing(tracing, options.view, config.sampleRatio);
}

function parentOf(traceParent: TraceParent | undefined): ReturnType<typeof spanContextOf> | null {
  return traceParent === undefined ? null : spanContextOf(traceParent);
}

/** tenant_id / stream_id of a command, when it names them (bad bodies are rejected later). */
function commandAttributes(request: RequestMessage): Attributes {
  if (request.operation !== 'command') return {};
  try {
    const command = decodeCommand(request.body);
    if (command.kind === 'append') {
      return {
        tenant_id: command.tenantId,
        stream_id: command.streamId,
        event_count: command.events.length,
      };
    }
    if (command.kind === 'create_stream') return { tenant_id: command.tenantId };
  } catch {
    // The node answers an undecodable command itself; the span just lacks the ids.
  }
  return {};
}

/** The error code of a committed command's result, or null when it succeeded. */
function kernelErrorCode(result: Uint8Array): string | null {
  if (result.length === 0 || result[0] !== 0) return null;
  try {
    const decoded = decodeResult(result);
    return decoded.status === 'error' ? decoded.code : null;
  } catch {
    return 'KMB_ERR_INTERNAL';
  }
}

function failSpan(span: Span, code: string): void {
  span.setAttribute('error.code', code);
  span.setStatus({ code: SpanStatusCode.ERROR, message: code });
}

/** Ends a span cut short, recording why. */
function endSpan(span: Span, outcome: string): void {
  span.setAttribute('outcome', outcome);
  span.end();
}

/** Wall-clock epoch milliseconds with sub-millisecond precision. */
function epochMs(): number {
  return performance.timeOrigin + performance.now();
}

/** Map.set with a bound: past it the oldest entry is removed and returned. */
function boundedSet<K, V>(map: Map<K, V>, key: K, value: V): V | undefined {
  let evicted: V | undefined;
  if (!map.has(key) && map.size >= nodeTracingLimits.openSpanCountMax) {
    const oldest = map.entries().next();
    if (oldest.done !== true) {
      map.delete(oldest.value[0]);
      evicted = oldest.value[1];
    }
  }
  map.set(key, value);
  return evicted;
}
