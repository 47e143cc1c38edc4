// Messages between clients and a node, carried in frames (frame.ts). Every message kind has a
// codec here; decoding takes untrusted bytes, bounds every length, and throws DecodeError on
// anything malformed, which the server answers with KMB_ERR_FRAME_MALFORMED.
//
// Conversation: the client sends `hello` and gets `hello_ok` (or `error`). Writes are `request`s
// in a client session: request number 0 registers the session, then 1, 2, 3... one at a time;
// each is answered by a `reply` (committed, carrying the kernel's encoded result) or an `error`
// (not committed: not leader, backpressure, session problems). Reads are `query`s, answered by
// `query_result` or `error`, matched by query id.
//
// Optional trailing items: a request or query may end with items a tag byte introduces, in
// ascending tag order, each at most once: 1 = stale consistency (queries only), 2 = a W3C trace
// context (traceparent). A message without them is the original format, so older frames decode
// unchanged; an older server refuses a frame that carries a trace context (trailing bytes).

import { DecodeError, Reader, Writer } from '../core/binary.js';
import { clientIdFromBytes, fromHex, sha256SizeBytes, toHex } from '../core/checksum.js';
import { constants } from '../core/constants.js';
import { errorCodes, isErrorCode } from '../core/errors.js';
import type { ErrorCode } from '../core/errors.js';
import { isValidTraceParent } from '../core/trace_parent.js';
import type { TraceParent } from '../core/trace_parent.js';
import {
  asOffset,
  asOp,
  asRequestNumber,
  asStreamId,
  asTenantId,
  asTimestampUs,
  asView,
} from '../core/types.js';
import type {
  ClientId,
  Offset,
  Op,
  RequestNumber,
  StreamId,
  TenantId,
  TimestampUs,
  View,
} from '../core/types.js';
import { dataClasses } from '../kernel/kernel.js';
import type { DataClass } from '../kernel/kernel.js';
import { encodeFrame } from './frame.js';

export const protocolVersion = 1;

export const messageKind = {
  hello: 1,
  hello_ok: 2,
  request: 3,
  reply: 4,
  error: 5,
  query: 6,
  query_result: 7,
} as const;

export const operationCode = { register: 1, command: 2 } as const;
export type Operation = keyof typeof operationCode;

export interface Hello {
  readonly protocolVersion: number;
  /** The cluster the client expects; empty accepts any. */
  readonly clusterName: string;
}

export interface HelloOk {
  readonly protocolVersion: number;
  readonly clusterName: string;
  readonly nodeId: number;
  readonly replicaCount: number;
  readonly view: View;
  readonly leader: number;
}

export interface RequestMessage {
  readonly clientId: ClientId;
  readonly requestNumber: RequestNumber;
  readonly operation: Operation;
  /** For `command`: an encoded kernel command (kernel/command.ts). Empty for `register`. */
  readonly body: Uint8Array;
  /** The caller's trace context, when it sent one. */
  readonly traceParent?: TraceParent;
}

export interface ReplyMessage {
  readonly clientId: ClientId;
  readonly requestNumber: RequestNumber;
  readonly op: Op;
  readonly timestampUs: TimestampUs;
  /** For `register`: empty. For `command`: the kernel's encoded result. */
  readonly result: Uint8Array;
}

/** What an error answers: the whole connection, a request, or a query. */
export type ErrorScope =
  | { readonly kind: 'connection' }
  | {
      readonly kind: 'request';
      readonly clientId: ClientId;
      readonly requestNumber: RequestNumber;
    }
  | { readonly kind: 'query'; readonly queryId: number };

export interface ErrorMessage {
  readonly scope: ErrorScope;
  readonly code: ErrorCode;
  readonly message: string;
  /** For KMB_ERR_NOT_LEADER: the leader's replica index when known, else -1. */
  readonly leaderHint: number;
}

export type Query =
  | { readonly kind: 'list_tenants' }
  /** This node's own view of itself and the cluster (the /status document), as JSON text. */
  | { readonly kind: 'node_status' }
  /** The bounded history of view changes this node saw, as JSON text. */
  | { readonly kind: 'view_changes' }
  | { readonly kind: 'list_streams'; readonly tenantId: TenantId }
  | {
      readonly kind: 'read_stream';
      readonly tenantId: TenantId;
      readonly streamId: StreamId;
      readonly fromOffset: Offset;
      readonly limit: number;
    };

export interface TenantInfo {
  readonly tenantId: TenantId;
  readonly name: string;
  readonly createdAtUs: TimestampUs;
  readonly sealed: boolean;
}

export interface StreamInfo {
  readonly streamId: StreamId;
  readonly tenantId: TenantId;
  readonly name: string;
  readonly dataClass: DataClass;
  readonly createdAtUs: TimestampUs;
  /** The offset the next appended event will get (= the number of events). */
  readonly nextOffset: Offset;
  readonly chainHead: Uint8Array;
}

export interface EventRecord {
  readonly offset: Offset;
  readonly timestampUs: TimestampUs;
  readonly data: Uint8Array;
}

export type QueryResult =
  | { readonly kind: 'list_tenants'; readonly tenants: readonly TenantInfo[] }
  | { readonly kind: 'node_status'; readonly json: string }
  | { readonly kind: 'view_changes'; readonly json: string }
  | { readonly kind: 'list_streams'; readonly streams: readonly StreamInfo[] }
  | {
      readonly kind: 'read_stream';
      readonly events: readonly EventRecord[];
      /** The stream's next offset at the moment of the read. */
      readonly nextOffset: Offset;
    };

/**
 * How fresh a read must be. `linearizable` (the default): served only by the leader, reflecting
 * every write acknowledged before the read. `stale`: served by any normal replica whose applied
 * log trails what it knows to be committed by at most lagOpsMax ops.
 */
export type Consistency =
  { readonly kind: 'linearizable' } | { readonly kind: 'stale'; readonly lagOpsMax: number };

export interface QueryMessage {
  readonly queryId: number;
  readonly query: Query;
  /** Absent means linearizable. */
  readonly consistency?: Consistency;
  /** The caller's trace context, when it sent one. */
  readonly traceParent?: TraceParent;
}

export interface QueryResultMessage {
  readonly queryId: number;
  readonly result: QueryResult;
}

export type ClientMessage =
  | { readonly kind: 'hello'; readonly hello: Hello }
  | { readonly kind: 'hello_ok'; readonly helloOk: HelloOk }
  | { readonly kind: 'request'; readonly request: RequestMessage }
  | { readonly kind: 'reply'; readonly reply: ReplyMessage }
  | { readonly kind: 'error'; readonly error: ErrorMessage }
  | { readonly kind: 'query'; readonly query: QueryMessage }
  | { readonly kind: 'query_result'; readonly queryResult: QueryResultMessage };

const clientIdSizeBytes = 16;
const queryTag = {
  list_tenants: 1,
  list_streams: 2,
  read_stream: 3,
  node_status: 4,
  view_changes: 5,
} as const;
const operatorJsonBytesMax = 1024 * 1024;
const scopeTag = { connection: 0, request: 1, query: 2 } as const;
const trailerTag = { stale: 1, traceParent: 2 } as const;
const traceIdSizeBytes = 16;
const spanIdSizeBytes = 8;
const nameBytesMax = Math.max(constants.tenantNameBytesMax, constants.streamNameBytesMax);
const listCountMax = constants.streamCountMax;

function writeClientId(writer: Writer, clientId: ClientId): void {
  writer.hexFixed(clientId, clientIdSizeBytes);
}

function readClientId(reader: Reader): ClientId {
  return clientIdFromBytes(reader.fixed(clientIdSizeBytes));
}

function writeTraceParent(writer: Writer, value: TraceParent | undefined): void {
  if (value === undefined) return;
  writer.u8(trailerTag.traceParent);
  writer.fixed(fromHex(value.traceId), traceIdSizeBytes);
  writer.fixed(fromHex(value.spanId), spanIdSizeBytes).u8(value.flags);
}

interface Trailer {
  consistency?: Consistency;
  traceParent?: TraceParent;
}

/** Reads the optional trailing items (see the file comment) up to the end of the input. */
function readTrailer(reader: Reader, consistencyAllowed: boolean): Trailer {
  const trailer: Trailer = {};
  let tagLast = 0;
  while (reader.remaining > 0) {
    const tag = reader.u8();
    if (tag <= tagLast) throw new DecodeError(`trailing item ${tag} out of order or repeated`);
    tagLast = tag;
    if (tag === trailerTag.stale && consistencyAllowed) {
      trailer.consistency = { kind: 'stale', lagOpsMax: reader.u32() };
    } else if (tag === trailerTag.traceParent) {
      const traceId = toHex(reader.fixed(traceIdSizeBytes));
      const spanId = toHex(reader.fixed(spanIdSizeBytes));
      const traceParent = { traceId, spanId, flags: reader.u8() };
      if (!isValidTraceParent(traceParent)) throw new DecodeError('trace context has a zero id');
      trailer.traceParent = traceParent;
    } else {
      throw new DecodeError(`unknown trailing item ${tag}`);
    }
  }
  return trailer;
}

function encodeQuery(writer: Writer, query: Query): void {
  writer.u8(queryTag[query.kind]);
  if (query.kind === 'list_streams') writer.u64(query.tenantId);
  if (query.kind === 'read_stream') {
    writer.u64(query.tenantId).u64(query.streamId).u64(query.fromOffset).u32(query.limit);
  }
}

function decodeQuery(reader: Reader): Query {
  const tag = reader.u8();
  if (tag === queryTag.list_tenants) return { kind: 'list_tenants' };
  if (tag === queryTag.node_status) return { kind: 'node_status' };
  if (tag === queryTag.view_changes) return { kind: 'view_changes' };
  if (tag === queryTag.list_streams)
    return { kind: 'list_streams', tenantId: asTenantId(reader.u64()) };
  if (tag === queryTag.read_stream) {
    const tenantId = asTenantId(reader.u64());
    const streamId = asStreamId(reader.u64());
    const fromOffset = asOffset(reader.u64());
    return { kind: 'read_stream', tenantId, streamId, fromOffset, limit: reader.u32() };
  }
  throw new DecodeError(`unknown query tag ${tag}`);
}

function encodeQueryResult(writer: Writer, result: QueryResult): void {
  writer.u8(queryTag[result.kind]);
  if (result.kind === 'node_status' || result.kind === 'view_changes') {
    writer.string(result.json);
  } else if (result.kind === 'list_tenants') {
    writer.u32(result.tenants.length);
    for (const t of result.tenants) {
      writer.u64(t.tenantId).string(t.name).u64(t.createdAtUs).bool(t.sealed);
    }
  } else if (result.kind === 'list_streams') {
    writer.u32(result.streams.length);
    for (const s of result.streams) {
      writer.u64(s.streamId).u64(s.tenantId).string(s.name);
      writer.u8(dataClasses.indexOf(s.dataClass)).u64(s.createdAtUs).u64(s.nextOffset);
      writer.fixed(s.chainHead, sha256SizeBytes);
    }
  } else {
    writer.u64(result.nextOffset).u32(result.events.length);
    for (const e of result.events) writer.u64(e.offset).u64(e.timestampUs).bytesField(e.data);
  }
}

function readCount(reader: Reader, countMax: number): number {
  const count = reader.u32();
  if (count > countMax) throw new DecodeError(`count ${count} exceeds ${countMax}`);
  return count;
}

function decodeStreamInfo(reader: Reader): StreamInfo {
  const streamId = asStreamId(reader.u64());
  const tenantId = asTenantId(reader.u64());
  const name = reader.string(nameBytesMax);
  const dataClass = dataClasses[reader.u8()];
  if (dataClass === undefined) throw new DecodeError('unknown data class');
  const createdAtUs = asTimestampUs(reader.u64());
  const nextOffset = asOffset(reader.u64());
  const chainHead = reader.fixed(sha256SizeBytes).slice();
  return { streamId, tenantId, name, dataClass, createdAtUs, nextOffset, chainHead };
}

function decodeQueryResult(reader: Reader): QueryResult {
  const tag = reader.u8();
  if (tag === queryTag.node_status) {
    return { kind: 'node_status', json: reader.string(operatorJsonBytesMax) };
  }
  if (tag === queryTag.view_changes) {
    return { kind: 'view_changes', json: reader.string(operatorJsonBytesMax) };
  }
  if (tag === queryTag.list_tenants) {
    const tenants: TenantInfo[] = [];
    for (let i = readCount(reader, constants.tenantCountMax); i > 0; i--) {
      const tenantId = asTenantId(reader.u64());
      const name = reader.string(nameBytesMax);
      tenants.push({
        tenantId,
        name,
        createdAtUs: asTimestampUs(reader.u64()),
        sealed: reader.bool(),
      });
    }
    return { kind: 'list_tenants', tenants };
  }
  if (tag === queryTag.list_streams) {
    const streams: StreamInfo[] = [];
    for (let i = readCount(reader, listCountMax); i > 0; i--)
      streams.push(decodeStreamInfo(reader));
    return { kind: 'list_streams', streams };
  }
  if (tag === queryTag.read_stream) {
    const nextOffset = asOffset(reader.u64());
    const events: EventRecord[] = [];
    for (let i = readCount(reader, constants.readEventCountMax); i > 0; i--) {
      const offset = asOffset(reader.u64());
      const timestampUs = asTimestampUs(reader.u64());
      events.push({ offset, timestampUs, data: reader.bytesField(constants.eventSizeBytesMax) });
    }
    return { kind: 'read_stream', events, nextOffset };
  }
  throw new DecodeError(`unknown query result tag ${tag}`);
}

function encodeScope(writer: Writer, scope: ErrorScope): void {
  writer.u8(scopeTag[scope.kind]);
  if (scope.kind === 'request') {
    writeClientId(writer, scope.clientId);
    writer.u64(scope.requestNumber);
  }
  if (scope.kind === 'query') writer.u32(scope.queryId);
}

function decodeScope(reader: Reader): ErrorScope {
  const tag = reader.u8();
  if (tag === scopeTag.connection) return { kind: 'connection' };
  if (tag === scopeTag.request) {
    const clientId = readClientId(reader);
    return { kind: 'request', clientId, requestNumber: asRequestNumber(reader.u64()) };
  }
  if (tag === scopeTag.query) return { kind: 'query', queryId: reader.u32() };
  throw new DecodeError(`unknown error scope ${tag}`);
}

/** Encodes a message body; the frame kind is messageKind[message.kind]. */
export function encodeMessage(message: ClientMessage): Uint8Array {
  const writer = new Writer(64);
  writeMessage(writer, message);
  return writer.finish();
}

/**
 * One writer reused by encodeMessageFrame: encoding is synchronous and never nests, so one
 * buffer serves every message a process sends instead of a fresh one (and its DataView) each.
 */
const scratchWriter = new Writer(64 * 1024);

/** A whole frame for `message`, encoded through the reused writer (one allocation: the frame). */
export function encodeMessageFrame(message: ClientMessage): Uint8Array {
  writeMessage(scratchWriter.reset(), message);
  return encodeFrame(messageKind[message.kind], scratchWriter.bytesView());
}

function writeMessage(writer: Writer, message: ClientMessage): void {
  switch (message.kind) {
    case 'hello':
      writer.u16(message.hello.protocolVersion).string(message.hello.clusterName);
      break;
    case 'hello_ok': {
      const h = message.helloOk;
      writer.u16(h.protocolVersion).string(h.clusterName).u8(h.nodeId).u8(h.replicaCount);
      writer.u32(h.view).u8(h.leader === -1 ? 0xff : h.leader);
      break;
    }
    case 'request': {
      const r = message.request;
      writeClientId(writer, r.clientId);
      writer.u64(r.requestNumber).u8(operationCode[r.operation]).bytesField(r.body);
      writeTraceParent(writer, r.traceParent);
      break;
    }
    case 'reply': {
      const r = message.reply;
      writeClientId(writer, r.clientId);
      writer.u64(r.requestNumber).u64(r.op).u64(r.timestampUs).bytesField(r.result);
      break;
    }
    case 'error': {
      const e = message.error;
      encodeScope(writer, e.scope);
      writer
        .string(e.code)
        .string(e.message)
        .u8(e.leaderHint === -1 ? 0xff : e.leaderHint);
      break;
    }
    case 'query': {
      writer.u32(message.query.queryId);
      encodeQuery(writer, message.query.query);
      const consistency = message.query.consistency;
      // Trailing and optional, so a query without it decodes as linearizable.
      if (consistency?.kind === 'stale') writer.u8(trailerTag.stale).u32(consistency.lagOpsMax);
      writeTraceParent(writer, message.query.traceParent);
      break;
    }
    case 'query_result':
      writer.u32(message.queryResult.queryId);
      encodeQueryResult(writer, message.queryResult.result);
      break;
  }
}

function decodeOperation(code: number): Operation {
  if (code === operationCode.register) return 'register';
  if (code === operationCode.command) return 'command';
  throw new DecodeError(`unknown operation ${code}`);
}

function decodeBody(kind: number, reader: Reader): ClientMessage {
  switch (kind) {
    case messageKind.hello:
      return {
        kind: 'hello',
        hello: { protocolVersion: reader.u16(), clusterName: reader.string(nameBytesMax) },
      };
    case messageKind.hello_ok: {
      const protocol = reader.u16();
      const clusterName = reader.string(nameBytesMax);
      const nodeId = reader.u8();
      const replicaCount = reader.u8();
      const view = asView(reader.u32());
      const leaderByte = reader.u8();
      const leader = leaderByte === 0xff ? -1 : leaderByte;
      return {
        kind: 'hello_ok',
        helloOk: { protocolVersion: protocol, clusterName, nodeId, replicaCount, view, leader },
      };
    }
    case messageKind.request: {
      const clientId = readClientId(reader);
      const requestNumber = asRequestNumber(reader.u64());
      const operation = decodeOperation(reader.u8());
      const body = reader.bytesField(constants.requestBodySizeBytesMax);
      const { traceParent } = readTrailer(reader, false);
      const request = { clientId, requestNumber, operation, body };
      return {
        kind: 'request',
        request: traceParent === undefined ? request : { ...request, traceParent },
      };
    }
    case messageKind.reply: {
      const clientId = readClientId(reader);
      const requestNumber = asRequestNumber(reader.u64());
      const op = asOp(reader.u64());
      const timestampUs = asTimestampUs(reader.u64());
      const result = reader.bytesField(constants.requestBodySizeBytesMax);
      return { kind: 'reply', reply: { clientId, requestNumber, op, timestampUs, result } };
    }
    case messageKind.error: {
      const scope = decodeScope(reader);
      const codeText = reader.string(256);
      const message = reader.string(64 * 1024);
      const hint = reader.u8();
      const code = isErrorCode(codeText) ? codeText : errorCodes.internal;
      return {
        kind: 'error',
        error: { scope, code, message, leaderHint: hint === 0xff ? -1 : hint },
      };
    }
    case messageKind.query: {
      const queryId = reader.u32();
      const query = decodeQuery(reader);
      return { kind: 'query', query: { queryId, query, ...readTrailer(reader, true) } };
    }
    case messageKind.query_result: {
      const queryId = reader.u32();
      return { kind: 'query_result', queryResult: { queryId, result: decodeQueryResult(reader) } };
    }
    default:
      throw new DecodeError(`unknown message kind ${kind}`);
  }
}

/** Decodes a frame body of the given kind; throws DecodeError for anything malformed. */
export function decodeMessage(kind: number, body: Uint8Array): ClientMessage {
  const reader = new Reader(body);
  const message = decodeBody(kind, reader);
  reader.end();
  return message;
}
