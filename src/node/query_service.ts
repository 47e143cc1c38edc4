// Serves reads (queries) from committed state: tenant and stream listings from the kernel state,
// stream events through the read index and the journal. Recently journalled prepares are kept
// in a bounded cache, so reads of fresh events do not touch the disk; older ones are read back
// from the journal, whose checksums are verified on every read. A read snapshots the stream's
// next offset before its first await, so it returns a consistent prefix of the stream.

import { assert } from '../core/assert.js';
import { constants } from '../core/constants.js';
import { kmbError } from '../core/errors.js';
import type { Prepare } from '../core/header.js';
import type { Op, TimestampUs } from '../core/types.js';
import { asOffset } from '../core/types.js';
import { decodeCommand, streamById, streamList, tenantById, tenantList } from '../kernel/kernel.js';
import type { Command, State } from '../kernel/kernel.js';
import type { EventRecord, Query, QueryResult } from '../net/client_protocol.js';
import type { Journal } from '../storage/journal.js';
import { decodeBatch } from '../vsr/batch.js';
import type { StreamIndex } from '../views/stream_index.js';

/**
 * Bounds on the read caches. The prepare cache holds the newest 256 prepares: enough for reads
 * that tail a stream, and short-lived enough to stay in V8's young generation. It held 4096, and
 * at a few thousand small prepares a second each one lived a second or more, was promoted to the
 * old generation and died there, costing mark-compacts (docs/performance.md, "Figures behind the
 * code"). Older prepares are read back from the journal.
 */
const prepareCacheCountMax = 256;
const prepareCacheBytesMax = 64 * 1024 * 1024;
const decodedCacheCountMax = 256;

type DecodedPrepare = { readonly timestampUs: TimestampUs; readonly commands: (Command | null)[] };

export class QueryService {
  private readonly prepares = new Map<Op, Prepare>();
  private preparesBytes = 0;
  private readonly decoded = new Map<Op, DecodedPrepare>();

  constructor(
    private readonly state: State,
    private readonly index: StreamIndex,
    private readonly journal: Journal,
  ) {}

  /** Keeps a freshly journalled prepare for reads, evicting the oldest past the bounds. */
  remember(prepare: Prepare): void {
    this.prepares.set(prepare.header.op, prepare);
    this.preparesBytes += prepare.body.length;
    while (this.prepares.size > prepareCacheCountMax || this.preparesBytes > prepareCacheBytesMax) {
      const oldest = this.prepares.entries().next();
      assert(!oldest.done, 'cache over its bounds is not empty');
      this.prepares.delete(oldest.value[0]);
      this.preparesBytes -= oldest.value[1].body.length;
    }
  }

  async run(query: Query): Promise<QueryResult> {
    switch (query.kind) {
      case 'list_tenants':
        return {
          kind: 'list_tenants',
          tenants: tenantList(this.state).map((t) => ({
            tenantId: t.id,
            name: t.name,
            createdAtUs: t.createdAtUs,
            sealed: t.sealed,
          })),
        };
      case 'list_streams':
        this.tenant(query.tenantId);
        return {
          kind: 'list_streams',
          streams: streamList(this.state, query.tenantId).map((s) => ({
            streamId: s.id,
            tenantId: s.tenantId,
            name: s.name,
            dataClass: s.dataClass,
            createdAtUs: s.createdAtUs,
            nextOffset: s.nextOffset,
            chainHead: s.chainHead,
          })),
        };
      case 'read_stream':
        return this.readStream(query);
      case 'node_status':
      case 'view_changes':
        throw kmbError('internal', `${query.kind} is answered by the node, not the query service`);
    }
  }

  private tenant(tenantId: Parameters<typeof tenantById>[1]): void {
    if (tenantById(this.state, tenantId) === undefined) {
      throw kmbError('tenant_not_found', `tenant ${tenantId} does not exist`);
    }
  }

  private async readStream(query: Extract<Query, { kind: 'read_stream' }>): Promise<QueryResult> {
    this.tenant(query.tenantId);
    const stream = streamById(this.state, query.tenantId, query.streamId);
    if (stream === undefined) {
      throw kmbError(
        'stream_not_found',
        `stream ${query.streamId} does not exist in tenant ${query.tenantId}`,
      );
    }
    const nextOffset = stream.nextOffset;
    if (query.fromOffset > nextOffset) {
      throw kmbError(
        'offset_out_of_range',
        `offset ${query.fromOffset} is past the end of the stream (next offset ${nextOffset})`,
      );
    }
    if (query.limit > constants.readEventCountMax) {
      throw kmbError(
        'limit_exceeded',
        `limit ${query.limit} exceeds the maximum of ${constants.readEventCountMax} per read`,
      );
    }
    const end = Math.min(nextOffset, query.fromOffset + query.limit);
    const events: EventRecord[] = [];
    let sizeBytes = 0;
    for (let offset = query.fromOffset; offset < end; offset++) {
      const location = this.index.locate(stream.id, offset);
      assert(location !== undefined, 'every committed offset is indexed');
      const decoded = await this.decodedAt(location.op);
      const command = decoded.commands[location.requestIndex];
      assert(command?.kind === 'append', 'an indexed event belongs to an append');
      const data = command.events[location.eventIndex];
      assert(data !== undefined, 'indexed event exists');
      if (events.length > 0 && sizeBytes + data.length > constants.readSizeBytesMax) break;
      sizeBytes += data.length;
      events.push({ offset: asOffset(offset), timestampUs: decoded.timestampUs, data });
    }
    return { kind: 'read_stream', events, nextOffset };
  }

  private async decodedAt(op: Op): Promise<DecodedPrepare> {
    const cached = this.decoded.get(op);
    if (cached !== undefined) return cached;
    const prepare = this.prepares.get(op) ?? (await this.journal.read(op));
    const commands = decodeBatch(prepare.body).map((request) =>
      request.operation === 'command' ? decodeCommand(request.body) : null,
    );
    const decoded = { timestampUs: prepare.header.timestampUs, commands };
    this.decoded.set(op, decoded);
    if (this.decoded.size > decodedCacheCountMax) {
      const oldest = this.decoded.keys().next();
      if (!oldest.done) this.decoded.delete(oldest.value);
    }
    return decoded;
  }
}
