// The query front: answers a client's queries. Operator queries (node_status, view_changes) are
// answered from the node's own state; reads are first checked against the read gate
// (read_gate.ts: linearizable by default, or stale within the reader's lag bound) and then served
// by the query service (committed state, the stream index and the journal). Each query is timed
// (kmb_query_duration_seconds), counted (kmb_requests_total by method and status), traced
// (kmb.query) when sampled, and a refusal is answered with its stable code — with the leader's
// index for KMB_ERR_NOT_LEADER — and logged.

import { errorCodes, KmbError } from '../core/errors.js';
import type { ErrorCode } from '../core/errors.js';
import type { QueryMessage, QueryResult } from '../net/client_protocol.js';
import type { Connection } from '../net/connection.js';
import type { Metrics, RequestMethod } from '../observability/metrics.js';
import type { NodeEventLog } from './node_event_log.js';
import type { NodeTracing } from './node_tracing.js';
import type { QueryService } from './query_service.js';
import type { ReadableReplica, ReadConsistency, ReadGate } from './read_gate.js';

export interface QueryFrontOptions {
  readonly metrics: Metrics;
  readonly eventLog: NodeEventLog;
  readonly tracing: NodeTracing | null;
  readonly gate: ReadGate;
  readonly replica: ReadableReplica;
  readonly queries: QueryService;
  /** The operator queries' answers (JSON). */
  readonly nodeStatus: () => unknown;
  readonly viewChanges: () => unknown;
}

export class QueryFront {
  constructor(private readonly options: QueryFrontOptions) {}

  async onQuery(connection: Connection, message: QueryMessage): Promise<void> {
    const { metrics, eventLog, tracing, replica } = this.options;
    const { queryId, query, traceParent } = message;
    const consistency: ReadConsistency = message.consistency ?? { kind: 'linearizable' };
    const startMs = performance.now();
    const span = tracing === null ? null : tracing.startQuery(query, traceParent, consistency.kind);
    let errorCode: ErrorCode | null = null;
    const method: RequestMethod = query.kind === 'read_stream' ? 'read' : query.kind;
    try {
      const result = await this.run(message.query, consistency);
      metrics.requestsTotal(method, 'ok').inc();
      connection.send({ kind: 'query_result', queryResult: { queryId, result } });
    } catch (error) {
      if (!(error instanceof KmbError)) throw error;
      errorCode = error.code;
      eventLog.clientError(error.code, { query_id: queryId, query: query.kind });
      metrics.requestsTotal(method, 'error').inc();
      metrics.errorsTotal(error.code).inc();
      const leaderHint = error.code === errorCodes.not_leader ? replica.primaryIndex : -1;
      const scope = { kind: 'query' as const, queryId };
      connection.send({
        kind: 'error',
        error: { scope, code: error.code, message: error.message, leaderHint },
      });
    } finally {
      metrics.queryDurationSeconds.observe((performance.now() - startMs) / 1000);
      if (span !== null && tracing !== null) tracing.endQuery(span, errorCode);
    }
  }

  private async run(
    query: QueryMessage['query'],
    consistency: ReadConsistency,
  ): Promise<QueryResult> {
    const o = this.options;
    if (query.kind === 'node_status') {
      return { kind: 'node_status', json: JSON.stringify(o.nodeStatus()) };
    }
    if (query.kind === 'view_changes') {
      return { kind: 'view_changes', json: JSON.stringify(o.viewChanges()) };
    }
    const refusal = o.gate.refusal(o.replica, consistency);
    if (refusal !== null) throw new KmbError(refusal.code, refusal.message);
    return o.queries.run(query);
  }
}
