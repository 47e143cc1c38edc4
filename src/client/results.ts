// The shapes the SDK hands back to its users, and their conversion from the wire. Ids and
// offsets keep their branded types (they are numbers at run time); every timestamp comes both as
// microseconds since the epoch and as ISO 8601 text; chain links are lower-case hex.

import { toHex } from '../core/checksum.js';
import { formatTimestampUs } from '../core/types.js';
import type { Offset, StreamId, TenantId, TimestampUs } from '../core/types.js';
import type { DataClass } from '../kernel/kernel.js';
import type { EventRecord, StreamInfo, TenantInfo } from '../net/client_protocol.js';
import type { OkResult } from './session.js';

/** Who did it and why, beyond the actor: recorded in the log with the command. */
export interface AuditOptions {
  /** Why the change is made. Default: empty. */
  readonly reason?: string;
  /** An id that ties this command to a request or ticket elsewhere. */
  readonly correlationId?: string;
}

/** A tenant as listed by {@link Client.listTenants}. */
export interface TenantSummary {
  readonly tenantId: TenantId;
  readonly name: string;
  readonly createdAtUs: TimestampUs;
  /** ISO 8601 with microseconds. */
  readonly createdAt: string;
  readonly sealed: boolean;
}

/** A tenant just created by {@link Client.createTenant}. */
export type CreatedTenant = Omit<TenantSummary, 'sealed'>;

/** A stream just created by {@link Client.createStream}. */
export interface CreatedStream {
  readonly streamId: StreamId;
  readonly tenantId: TenantId;
  readonly name: string;
  readonly dataClass: DataClass;
  readonly createdAtUs: TimestampUs;
  readonly createdAt: string;
}

/** A stream as listed by {@link Client.listStreams}. */
export interface StreamSummary extends CreatedStream {
  /** The offset the next event will get; also the number of events in the stream. */
  readonly nextOffset: Offset;
  /** The chain link of the last event (the stream's genesis while it is empty), hex. */
  readonly chainHead: string;
}

/** What {@link Client.append} answers. */
export interface AppendResult {
  /** The offset of the first appended event; the others follow it. */
  readonly firstOffset: Offset;
  readonly count: number;
  /** The stream's chain link after the last appended event, hex. */
  readonly chainHead: string;
}

/** One event of a stream. */
export interface StreamEvent {
  readonly offset: Offset;
  /** The commit time of the event, microseconds since the epoch. */
  readonly timestampUs: TimestampUs;
  /** The commit time as ISO 8601 with microseconds. */
  readonly timestamp: string;
  readonly data: Uint8Array;
}

/** What {@link Client.read} answers. */
export interface ReadResult {
  readonly events: readonly StreamEvent[];
  /** Where to continue reading: one past the last event returned, or `from` if none was. */
  readonly nextOffset: Offset;
  /** The stream's end (its next offset) when the read was served. */
  readonly endOffset: Offset;
}

export function tenantSummary(tenant: TenantInfo): TenantSummary {
  return {
    tenantId: tenant.tenantId,
    name: tenant.name,
    createdAtUs: tenant.createdAtUs,
    createdAt: formatTimestampUs(tenant.createdAtUs),
    sealed: tenant.sealed,
  };
}

export function streamSummary(stream: StreamInfo): StreamSummary {
  return {
    streamId: stream.streamId,
    tenantId: stream.tenantId,
    name: stream.name,
    dataClass: stream.dataClass,
    createdAtUs: stream.createdAtUs,
    createdAt: formatTimestampUs(stream.createdAtUs),
    nextOffset: stream.nextOffset,
    chainHead: toHex(stream.chainHead),
  };
}

export function streamEvent(event: EventRecord): StreamEvent {
  return {
    offset: event.offset,
    timestampUs: event.timestampUs,
    timestamp: formatTimestampUs(event.timestampUs),
    // A copy: the decoded data is a view into the frame, which should not be kept alive.
    data: new Uint8Array(event.data),
  };
}

type Ok<K extends OkResult['kind']> = Extract<OkResult, { kind: K }>;

export function createdTenant(result: Ok<'create_tenant'>): CreatedTenant {
  const { tenantId, name, createdAtUs } = result;
  return { tenantId, name, createdAtUs, createdAt: formatTimestampUs(createdAtUs) };
}

export function createdStream(result: Ok<'create_stream'>): CreatedStream {
  const { streamId, tenantId, name, dataClass, createdAtUs } = result;
  const createdAt = formatTimestampUs(createdAtUs);
  return { streamId, tenantId, name, dataClass, createdAtUs, createdAt };
}

export function appendResult(result: Ok<'append'>): AppendResult {
  return {
    firstOffset: result.firstOffset,
    count: result.count,
    chainHead: toHex(result.chainHead),
  };
}
