// Serves reads (queries) from committed state: tenant and stream listings from the kernel state,
// stream events through the stream index and the journal (stream_reader.ts: batched, verified
// reads of the journal, and the caches that fit what readers do). A read snapshots the stream's
// next offset before its first await, so it returns a consistent prefix of the stream.

import { constants } from '../core/constants.js';
import { kmbError } from '../core/errors.js';
import type { Prepare } from '../core/header.js';
import { streamById, streamList, tenantById, tenantList } from '../kernel/kernel.js';
import type { State } from '../kernel/kernel.js';
import type { Query, QueryResult } from '../net/client_protocol.js';
import type { StreamIndex } from '../views/stream_index.js';
import { StreamReader } from './stream_reader.js';
import type { JournalReads } from './stream_reader.js';

export class QueryService {
  private readonly reader: StreamReader;

  constructor(
    private readonly state: State,
    index: StreamIndex,
    journal: JournalReads,
  ) {
    this.reader = new StreamReader(index, journal);
  }

  /** Keeps a freshly journalled prepare for reads (stream_reader.ts). */
  remember(prepare: Prepare): void {
    this.reader.remember(prepare);
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
    const events = await this.reader.read(stream.id, query.fromOffset, end);
    return { kind: 'read_stream', events, nextOffset };
  }
}
