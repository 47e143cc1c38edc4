// The kimberlite-ts client SDK: connect() to a cluster and get a Client that creates tenants and
// streams, appends events and reads them back, with reconnects and exactly-once retries built in.
//
// Writes go through client sessions (session.ts): queued, sent one at a time per session,
// retried with the same request number until answered or requestTimeoutMs passes. A client
// holds one session by default (writes commit in call order); with `pipelineMax` N it holds up
// to N and has up to N writes in flight at once (session_pool.ts). Reads are queries
// (list_tenants, list_streams, read_stream): they may be many in flight at once and are simply
// resent after a drop. Every failure is a KmbError with a stable code; kernel rejections
// (KMB_ERR_TENANT_EXISTS, KMB_ERR_OFFSET_MISMATCH...) keep the kernel's code.
//
// Arguments are validated here (with the checks of arguments.ts), before anything is sent, so
// that a bad call fails with KMB_ERR_INVALID_ARGUMENT (or KMB_ERR_LIMIT_EXCEEDED for a request
// over the wire's bound) instead of costing a round trip or a connection.

import { constants } from '../core/constants.js';
import { KmbError, kmbError } from '../core/errors.js';
import { asOffset, asStreamId, asTenantId } from '../core/types.js';
import type { ClientId, Offset, StreamId, TenantId } from '../core/types.js';
import { encodeCommand, fieldNames, isDataClass } from '../kernel/kernel.js';
import type { Audit, Command, DataClass } from '../kernel/kernel.js';
import type { TraceParent } from '../core/trace_parent.js';
import type { Consistency, Query, QueryResult } from '../net/client_protocol.js';
import { formatAddress, parseAddress } from './address.js';
import { AppendCoalescer } from './append_coalescer.js';
import { eventBytes, newName, text, u53 } from './arguments.js';
import { CallLog } from './call_log.js';
import { verifyStreamChain } from './chain_verify.js';
import type { ChainVerdict } from './chain_verify.js';
import { Cluster } from './cluster.js';
import type { FailoverCounters } from './cluster.js';
import { queryKey } from './connection.js';
import { fetchNodeStatus, fetchViewChanges, nodeQueryLimits } from './node_info.js';
import type { NodeStatus, ViewChange } from './node_info.js';
import { clientLimits, resolveOptions } from './options.js';
import type { ConnectOptions, ResolvedOptions } from './options.js';
import * as results from './results.js';
import type {
  AppendResult,
  AuditOptions,
  CreatedStream,
  CreatedTenant,
  ReadResult,
  StreamEvent,
  StreamSummary,
  TenantSummary,
} from './results.js';
import { exchangeWithRetry } from './retry.js';
import type { RetryContext } from './retry.js';
import type { OkResult } from './session.js';
import { SessionPool } from './session_pool.js';
import { ClientTracing } from './tracing.js';
import type { TraceOptions } from './tracing.js';

export { verifyStreamChain } from './chain_verify.js';
export type { ChainEvent, ChainInput, ChainVerdict } from './chain_verify.js';
export {
  fetchNodeStatus,
  fetchViewChanges,
  nodeQueryLimits,
  parseNodeStatus,
  parseViewChanges,
} from './node_info.js';
export type { ClusterMember, NodeQueryOptions, NodeStatus, ViewChange } from './node_info.js';
export type { FailoverCounters } from './cluster.js';
export { clientLimits, defaultActor } from './options.js';
export type { ConnectOptions } from './options.js';
export type {
  AppendResult,
  AuditOptions,
  CreatedStream,
  CreatedTenant,
  ReadResult,
  StreamEvent,
  StreamSummary,
  TenantSummary,
} from './results.js';
export type { TraceOptions } from './tracing.js';
export { KmbError, errorCodes, isRetryableCode } from '../core/errors.js';
export type { ErrorCode } from '../core/errors.js';
export type { ClientId, Offset, StreamId, TenantId, TimestampUs } from '../core/types.js';
export { dataClasses } from '../kernel/kernel.js';
export type { DataClass } from '../kernel/kernel.js';

/** What {@link Client.createStream} takes. */
export interface CreateStreamInput {
  readonly tenantId: number;
  readonly name: string;
  /** Default 'Public'. */
  readonly dataClass?: DataClass;
}

/** What {@link Client.append} takes. */
export interface AppendInput {
  readonly tenantId: number;
  readonly streamId: number;
  /** The events, as bytes or as text (stored as UTF-8). */
  readonly events: ReadonlyArray<Uint8Array | string>;
  /** Append only if the stream's next offset is this (optimistic concurrency). */
  readonly expectedOffset?: number;
}

/** What {@link Client.read} takes. */
export interface ReadInput {
  readonly tenantId: number;
  readonly streamId: number;
  /** The first offset to read. Default 0. */
  readonly from?: number;
  /** At most this many events (1..readEventCountMax). Default readEventCountMax. */
  readonly limit?: number;
}

/** Options of the operator queries {@link Client.nodeStatus} and {@link Client.viewChanges}. */
export interface NodeQueryCallOptions {
  /** The whole budget of the query. Default 2000 ms (never more than requestTimeoutMs). */
  readonly timeoutMs?: number;
}

/**
 * How fresh a read must be. 'linearizable' (the default): served by the leader only, after every
 * write acknowledged before the read started. 'stale': served by whichever replica the client is
 * connected to, as long as that replica's applied log trails the commit it knows of by at most
 * lagOpsMax ops; it may miss recent writes, but it keeps reads off the leader.
 */
export interface ReadOptions extends TraceOptions {
  readonly consistency?: 'linearizable' | 'stale';
  /** For 'stale': the most ops the serving replica may trail by. Default 100. */
  readonly lagOpsMax?: number;
}

/** Options of a write: its audit fields and the trace it belongs to. */
export interface WriteOptions extends AuditOptions, TraceOptions {}

/** The default bound on a stale read's lag, in ops. */
export const staleReadLagOpsMaxDefault = 100;

/** What {@link Client.events} takes. */
export interface EventsInput {
  readonly tenantId: number;
  readonly streamId: number;
  /** The first offset to read. Default 0. */
  readonly from?: number;
  /** Stop after this many events. Default: read to the end of the stream. */
  readonly count?: number;
}

/** A connection to a kimberlite-ts cluster. Get one with {@link connect}. */
export class Client {
  private readonly session: SessionPool;
  private readonly context: RetryContext;
  private readonly tracing: ClientTracing;
  private readonly coalescer: AppendCoalescer<AppendTemplate> | null;
  private queryIdNext = 1;
  private soloKeyNext = 1;
  private queriesInFlight = 0;

  /** @internal Use {@link connect}. */
  constructor(
    private readonly options: ResolvedOptions,
    private readonly cluster: Cluster,
  ) {
    this.context = {
      cluster,
      backoff: options.backoff,
      random: options.random,
      timeoutMs: options.requestTimeoutMs,
      attemptTimeoutMs: options.attemptTimeoutMs,
    };
    this.session = new SessionPool({
      context: this.context,
      requestTimeoutMs: options.requestTimeoutMs,
      requestQueueCountMax: clientLimits.requestQueueCountMax,
      sessionCountMax: options.pipelineMax,
    });
    this.tracing = new ClientTracing(options.tracer);
    this.coalescer = options.coalesceAppends
      ? new AppendCoalescer<AppendTemplate>({
          slotCountMax: options.pipelineMax,
          eventCountMax: clientLimits.coalescedEventCountMax,
          // Room for the command's fixed fields (ids, audit strings) within the request bound.
          bodySizeBytesMax: constants.requestBodySizeBytesMax - appendFixedBytesMax,
          pendingEventCountMax: clientLimits.coalescedPendingEventCountMax,
          send: ({ trace, ...fields }, events) =>
            this.appendCommand({ kind: 'append', ...fields, events }, trace),
        })
      : null;
  }

  /** The actor recorded with this client's commands. */
  get actor(): string {
    return this.options.actor;
  }

  /**
   * How this client dealt with replicas that did not answer, since connect(): replicas marked
   * unresponsive, leader hints not followed because they named one, marks lifted (docs/sdk.md).
   */
  get failoverCounters(): Readonly<FailoverCounters> {
    return { ...this.cluster.counters };
  }

  /** The session's client id once a write registered it (null before). */
  get clientId(): ClientId | null {
    return this.session.clientId;
  }

  /** Creates a tenant; throws KMB_ERR_TENANT_EXISTS if the name is taken. */
  async createTenant(name: string, audit?: WriteOptions): Promise<CreatedTenant> {
    newName(name, 'tenant');
    const command: Command = { kind: 'create_tenant', name, audit: this.audit(audit) };
    const result = await this.command(command, audit);
    if (result.kind !== 'create_tenant') throw mismatched('create_tenant', result.kind);
    return results.createdTenant(result);
  }

  /** Creates a stream in a tenant; throws KMB_ERR_STREAM_EXISTS if the name is taken there. */
  async createStream(input: CreateStreamInput, audit?: WriteOptions): Promise<CreatedStream> {
    const tenantId = asTenantId(u53(input.tenantId, 'tenantId'));
    const name = newName(input.name, 'stream');
    const dataClass = input.dataClass ?? 'Public';
    if (!isDataClass(dataClass)) {
      throw kmbError('invalid_argument', `unknown data class ${JSON.stringify(dataClass)}`);
    }
    const auditFields = this.audit(audit);
    const command: Command = {
      kind: 'create_stream',
      tenantId,
      name,
      dataClass,
      audit: auditFields,
    };
    const result = await this.command(command, audit, { tenant_id: tenantId });
    if (result.kind !== 'create_stream') throw mismatched('create_stream', result.kind);
    return results.createdStream(result);
  }

  /**
   * Appends events to a stream, all or none. With expectedOffset, the append happens only if
   * the stream's next offset equals it, else KMB_ERR_OFFSET_MISMATCH.
   */
  async append(input: AppendInput, audit?: WriteOptions): Promise<AppendResult> {
    const tenantId = asTenantId(u53(input.tenantId, 'tenantId'));
    const streamId = asStreamId(u53(input.streamId, 'streamId'));
    const expectedOffset =
      input.expectedOffset === undefined
        ? null
        : asOffset(u53(input.expectedOffset, 'expectedOffset'));
    const events = eventBytes(input.events);
    const auditFields = this.audit(audit);
    const coalescer = this.coalescer;
    if (coalescer === null) {
      const kind = 'append';
      const command = {
        kind,
        tenantId,
        streamId,
        expectedOffset,
        events,
        audit: auditFields,
      } as const;
      return this.appendCommand(command, audit);
    }
    if (this.cluster.isClosed) throw kmbError('connection_lost', 'the client is closed');
    // Every append goes through the coalescer so that appends keep their call order; those with
    // an expected offset or a trace context of their own get a key of their own (never merged).
    const solo = expectedOffset !== null || audit?.traceContext !== undefined;
    const template = { tenantId, streamId, audit: auditFields, expectedOffset, trace: audit };
    const key = solo ? `solo ${this.soloKeyNext++}` : appendKey(template);
    return coalescer.append(key, template, events);
  }

  private async appendCommand(
    command: Extract<Command, { kind: 'append' }>,
    trace: TraceOptions | undefined,
  ): Promise<AppendResult> {
    const ids = {
      tenant_id: command.tenantId,
      stream_id: command.streamId,
      event_count: command.events.length,
    };
    const result = await this.command(command, trace, ids);
    if (result.kind !== 'append') throw mismatched('append', result.kind);
    return results.appendResult(result);
  }

  /**
   * Reads up to `limit` events from `from`; the read may stop early at the size bound. Reads are
   * linearizable unless `options.consistency` is 'stale' (see {@link ReadOptions}).
   */
  async read(input: ReadInput, options: ReadOptions = {}): Promise<ReadResult> {
    const consistency = consistencyOf(options);
    const tenantId = asTenantId(u53(input.tenantId, 'tenantId'));
    const streamId = asStreamId(u53(input.streamId, 'streamId'));
    const fromOffset = asOffset(u53(input.from ?? 0, 'from'));
    const limit = input.limit ?? constants.readEventCountMax;
    if (!Number.isSafeInteger(limit) || limit < 1 || limit > constants.readEventCountMax) {
      const max = constants.readEventCountMax;
      throw kmbError('invalid_argument', `limit must be an integer from 1 to ${max}`);
    }
    const query: Query = { kind: 'read_stream', tenantId, streamId, fromOffset, limit };
    const result = await this.query(query, consistency, options);
    if (result.kind !== 'read_stream') throw mismatched('read_stream', result.kind);
    const events = result.events.map(results.streamEvent);
    const last = events[events.length - 1];
    const nextOffset = last === undefined ? fromOffset : asOffset(last.offset + 1);
    return { events, nextOffset, endOffset: result.nextOffset };
  }

  /**
   * Every event from `from` on, page by page, until `count` events or the end of the stream
   * (as of the page that reached it).
   */
  async *events(
    input: EventsInput,
    options: ReadOptions = {},
  ): AsyncGenerator<StreamEvent, void, undefined> {
    let from = u53(input.from ?? 0, 'from');
    let left = input.count === undefined ? Infinity : u53(input.count, 'count');
    while (left > 0) {
      const limit = Math.min(left, constants.readEventCountMax);
      const page = await this.read({ ...input, from, limit }, options);
      for (const event of page.events) yield event;
      left -= page.events.length;
      if (page.events.length === 0 || page.nextOffset >= page.endOffset) return;
      from = page.nextOffset;
    }
  }

  /** Every tenant, in id order. */
  async listTenants(): Promise<TenantSummary[]> {
    const result = await this.query({ kind: 'list_tenants' });
    if (result.kind !== 'list_tenants') throw mismatched('list_tenants', result.kind);
    return result.tenants.map(results.tenantSummary);
  }

  /** The tenant's streams, in id order (KMB_ERR_TENANT_NOT_FOUND if there is no such tenant). */
  async listStreams(tenantId: number): Promise<StreamSummary[]> {
    const id = asTenantId(u53(tenantId, 'tenantId'));
    const result = await this.query({ kind: 'list_streams', tenantId: id });
    if (result.kind !== 'list_streams') throw mismatched('list_streams', result.kind);
    return result.streams.map(results.streamSummary);
  }

  /**
   * Reads a whole stream and checks its hash chain against the head the cluster reports
   * (see {@link verifyStreamChain}).
   */
  async verifyStream(input: { tenantId: number; streamId: number }): Promise<ChainVerdict> {
    const streams = await this.listStreams(input.tenantId);
    const stream = streams.find((candidate) => candidate.streamId === input.streamId);
    if (stream === undefined) {
      const where = `tenant ${input.tenantId}`;
      throw kmbError('stream_not_found', `stream ${input.streamId} not found in ${where}`);
    }
    const events: StreamEvent[] = [];
    const count = stream.nextOffset;
    for await (const event of this.events({ ...input, from: 0, count })) events.push(event);
    return verifyStreamChain({ ...input, events, expectedHead: stream.chainHead });
  }

  /**
   * What one node says about itself and the cluster: its status document (the one GET /status
   * serves), with the node's view, op and commit numbers, whether it leads, the leader it knows
   * of and its links to the other replicas. The query goes to `address` (default: the node this
   * client is connected to, else the first address) and nowhere else: no failover, no retry.
   * Throws KMB_ERR_TIMEOUT when the node does not answer within the budget, or the error the
   * connection failed with (KMB_ERR_CONNECTION_LOST for a node that is down).
   */
  async nodeStatus(address?: string, options: NodeQueryCallOptions = {}): Promise<NodeStatus> {
    return fetchNodeStatus(this.operatorAddress(address), this.nodeQueryOptions(options));
  }

  /**
   * The view changes one node saw (a bounded history, oldest first): when each started and
   * finished, from which view to which, why, and who became leader. Addressed like
   * {@link Client.nodeStatus}: one node, no failover, a short timeout.
   */
  async viewChanges(address?: string, options: NodeQueryCallOptions = {}): Promise<ViewChange[]> {
    return fetchViewChanges(this.operatorAddress(address), this.nodeQueryOptions(options));
  }

  /** Closes the connection. Calls still waiting fail with KMB_ERR_CONNECTION_LOST. */
  async close(): Promise<void> {
    this.cluster.close();
  }

  private operatorAddress(address: string | undefined): string {
    if (this.cluster.isClosed) throw kmbError('connection_lost', 'the client is closed');
    if (address !== undefined) return formatAddress(parseAddress(address));
    const current = this.cluster.currentAddress ?? this.options.addresses[0];
    if (current === undefined) throw kmbError('invalid_argument', 'no address to ask');
    return formatAddress(current);
  }

  private nodeQueryOptions(options: NodeQueryCallOptions): {
    clusterName: string;
    timeoutMs: number;
  } {
    const timeoutMs = options.timeoutMs ?? nodeQueryLimits.timeoutMsDefault;
    if (!Number.isSafeInteger(timeoutMs) || timeoutMs <= 0) {
      throw kmbError('invalid_argument', 'timeoutMs must be a positive integer of milliseconds');
    }
    const budgetMs = Math.min(timeoutMs, this.options.requestTimeoutMs);
    return { clusterName: this.options.clusterName, timeoutMs: budgetMs };
  }

  private audit(audit: AuditOptions | undefined): Audit {
    const reason = text(audit?.reason ?? '', constants.reasonBytesMax, fieldNames.reason);
    const correlationId =
      audit?.correlationId === undefined
        ? null
        : text(audit.correlationId, constants.correlationIdBytesMax, fieldNames.correlationId);
    return { actor: this.options.actor, reason, correlationId };
  }

  private async command(
    command: Command,
    trace: TraceOptions | undefined,
    attributes: Record<string, number> = {},
  ): Promise<OkResult> {
    if (this.cluster.isClosed) throw kmbError('connection_lost', 'the client is closed');
    const body = encodeCommand(command);
    if (body.length > constants.requestBodySizeBytesMax) {
      const max = constants.requestBodySizeBytesMax;
      const detail = `${command.kind} of ${body.length} bytes exceeds the request limit of ${max}`;
      throw kmbError('limit_exceeded', `${detail}; split it into smaller appends`);
    }
    return this.tracing.run(command.kind, attributes, trace, (traceParent) =>
      this.session.submit(command.kind, body, traceParent),
    );
  }

  private async query(
    query: Query,
    consistency?: Consistency,
    trace?: TraceOptions,
  ): Promise<QueryResult> {
    if (this.cluster.isClosed) throw kmbError('connection_lost', 'the client is closed');
    if (this.queriesInFlight >= clientLimits.queryInFlightCountMax) {
      const max = clientLimits.queryInFlightCountMax;
      throw kmbError('backpressure', `${max} queries are already in flight`);
    }
    this.queriesInFlight += 1;
    try {
      return await this.tracing.run(query.kind, {}, trace, (traceParent) =>
        this.exchangeQuery(query, consistency, traceParent),
      );
    } finally {
      this.queriesInFlight -= 1;
    }
  }

  private async exchangeQuery(
    query: Query,
    consistency: Consistency | undefined,
    traceParent: TraceParent | undefined,
  ): Promise<QueryResult> {
    const queryId = this.queryIdNext;
    this.queryIdNext = queryId >= 0xffff_ffff ? 1 : queryId + 1;
    const exchange = {
      what: `query ${query.kind}`,
      key: queryKey(queryId),
      message: {
        kind: 'query' as const,
        query: {
          queryId,
          query,
          ...(consistency === undefined ? {} : { consistency }),
          ...(traceParent === undefined ? {} : { traceParent }),
        },
      },
    };
    const deadlineMs = Date.now() + this.options.requestTimeoutMs;
    const answer = await exchangeWithRetry(this.context, exchange, deadlineMs);
    if (answer.kind !== 'query_result') throw mismatched(query.kind, answer.kind);
    return answer.queryResult.result;
  }
}

/** The wire form of a read's consistency; undefined for the default (linearizable). */
function consistencyOf(options: ReadOptions): Consistency | undefined {
  const kind = options.consistency ?? 'linearizable';
  if (kind !== 'linearizable' && kind !== 'stale') {
    throw kmbError('invalid_argument', `consistency must be 'linearizable' or 'stale'`);
  }
  if (kind === 'linearizable') {
    if (options.lagOpsMax !== undefined) {
      throw kmbError('invalid_argument', "lagOpsMax applies to consistency 'stale' only");
    }
    return undefined;
  }
  const lagOpsMax = options.lagOpsMax ?? staleReadLagOpsMaxDefault;
  if (!Number.isSafeInteger(lagOpsMax) || lagOpsMax < 0 || lagOpsMax > 0xffff_ffff) {
    throw kmbError('invalid_argument', 'lagOpsMax must be an integer from 0 to 4294967295');
  }
  return { kind: 'stale', lagOpsMax };
}

/** The fields coalesced appends must share: one command carries them for all. */
interface AppendTemplate {
  readonly tenantId: TenantId;
  readonly streamId: StreamId;
  readonly audit: Audit;
  /** Non-null only on an append sent alone. */
  readonly expectedOffset: Offset | null;
  /** The call's own trace options (those with a traceContext are sent alone). */
  readonly trace: WriteOptions | undefined;
}

/** The most bytes an append command spends besides its events (ids, offset, count, audit). */
const appendFixedBytesMax =
  64 + constants.actorBytesMax + constants.reasonBytesMax + constants.correlationIdBytesMax;

function appendKey(template: AppendTemplate): string {
  // The actor is the client's own, the same for every call; lengths keep the key unambiguous.
  const { reason, correlationId } = template.audit;
  const correlation = correlationId === null ? '' : `${correlationId.length}:${correlationId}`;
  return `${template.tenantId}/${template.streamId}/${reason.length}:${reason}/${correlation}`;
}

function mismatched(expected: string, actual: string): KmbError {
  return kmbError('frame_malformed', `expected a ${expected} answer, got ${actual}`);
}

/**
 * Connects to a cluster: tries the addresses in turn until one completes the hello exchange,
 * within requestTimeoutMs. Throws KMB_ERR_TIMEOUT naming what was tried, or at once
 * KMB_ERR_CLUSTER_MISMATCH / KMB_ERR_PROTOCOL_VERSION when a node cannot be used at all.
 */
export async function connect(options: ConnectOptions): Promise<Client> {
  const resolved = resolveOptions(options);
  const cluster = new Cluster({
    addresses: resolved.addresses,
    clusterName: resolved.clusterName,
    connectTimeoutMs: resolved.connectTimeoutMs,
    attemptTimeoutMs: resolved.attemptTimeoutMs,
    backoff: resolved.backoff,
    random: resolved.random,
  });
  let connection;
  const log = new CallLog();
  try {
    connection = await cluster.connection(Date.now() + resolved.requestTimeoutMs, log);
  } catch (error) {
    cluster.close();
    throw error;
  }
  if (connection === null) {
    cluster.close();
    const list = resolved.addresses.map(formatAddress).join(', ');
    const tried = log.describe(resolved.addresses);
    throw kmbError(
      'timeout',
      `could not connect to ${list} within ${resolved.requestTimeoutMs} ms; tried ${tried}`,
    );
  }
  return new Client(resolved, cluster);
}
