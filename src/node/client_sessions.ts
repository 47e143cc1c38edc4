// The clients sink: which connection each client uses now, the write each is waiting for, and
// the answers. Inbound, a request passes admission before it reaches the replica: a full disk
// refuses every write at the leader (register included); a command must decode, fit its bounds
// and name valid new objects (kernel admitCommand); a stopping node refuses; a register must pass
// the per-connection session limits (session_admission.ts). Each refusal is answered with its
// stable code, counted (kmb_errors_total, kmb_requests_total{status="error"}) and logged.
// Outbound, a reply or rejection goes to the connection its client last used (none: dropped; the
// client retries and gets the cached reply), and the write's latency and outcome are recorded.
//
// Invariants: `pending` holds at most one request per client (the latest request number it
// sent); a connection that closes leaves `clients`.

import { errorCodes } from '../core/errors.js';
import type { ErrorCode } from '../core/errors.js';
import type { ClientId, RequestNumber } from '../core/types.js';
import { admitCommand } from '../kernel/kernel.js';
import type { ClientMessage, RequestMessage } from '../net/client_protocol.js';
import type { Connection } from '../net/connection.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics, RequestMethod } from '../observability/metrics.js';
import type { ClientSink, Rejection } from '../vsr/effect_driver.js';
import type { Reply } from '../vsr/message.js';
import type { DiskSpace } from './disk_space.js';
import type { NodeEventLog } from './node_event_log.js';
import type { NodeTracing } from './node_tracing.js';
import type { SessionAdmission } from './session_admission.js';
import { mark, timelineOn } from './timeline.js';

interface PendingRequest {
  readonly requestNumber: number;
  readonly method: RequestMethod;
  /** When the request arrived (performance.now(), ms). */
  readonly startMs: number;
}

export interface ClientSessionsOptions {
  readonly metrics: Metrics;
  /** Target kmb_net. */
  readonly logger: Logger;
  readonly eventLog: NodeEventLog;
  readonly tracing: NodeTracing | null;
  readonly disk: DiskSpace;
  readonly sessionAdmission: SessionAdmission;
  /** Whether this replica leads (a full disk refuses writes only there). */
  readonly isPrimary: () => boolean;
  readonly stopping: () => boolean;
  /** Hands an admitted request to the replica. */
  readonly submit: (request: RequestMessage) => void;
  /** Observes each reply just before it is written (tests record ordering). */
  readonly onReply?:
    ((clientId: ClientId, requestNumber: number, op: number | null) => void) | undefined;
}

export class ClientSessions implements ClientSink {
  private readonly clients = new Map<ClientId, Connection>();
  private readonly pending = new Map<ClientId, PendingRequest>();

  constructor(private readonly options: ClientSessionsOptions) {}

  onRequest(connection: Connection, request: RequestMessage): void {
    if (timelineOn) mark('request_in', -1);
    const o = this.options;
    if (o.disk.full && o.isPrimary()) {
      // A full disk: no write (register included) enters the log until space returns.
      const refusal = o.disk.refusal();
      this.refuse(connection, request, refusal.code, refusal.message);
      return;
    }
    let method: RequestMethod = 'register';
    if (request.operation === 'command') {
      // Undecodable bytes, fields over their bounds and bad new names never reach the log.
      const admission = admitCommand(request.body);
      if (!admission.admitted) {
        const { code, message } = admission.error;
        const fields = { code, reason: message };
        o.logger.warnRateLimited(
          `admission:${code}`,
          10_000,
          'Request refused at admission',
          fields,
        );
        this.refuse(connection, request, code, message);
        return;
      }
      method = admission.kind;
    }
    if (o.stopping()) {
      const message = 'node is shutting down; retry against another replica or after restart';
      this.refuse(connection, request, errorCodes.shutting_down, message);
      return;
    }
    const { clientId, requestNumber } = request;
    // Sessions per connection and their registration rate (session_admission.ts).
    const refused =
      request.operation === 'register'
        ? o.sessionAdmission.admit(connection, clientId, connection.remoteAddress)
        : null;
    if (refused !== null) {
      this.refuse(connection, request, errorCodes.limit_exceeded, refused);
      return;
    }
    this.clients.set(clientId, connection);
    const pending = this.pending.get(clientId);
    if (pending === undefined || pending.requestNumber !== requestNumber) {
      this.pending.set(clientId, { requestNumber, method, startMs: performance.now() });
    }
    if (o.tracing !== null) o.tracing.onRequest(request, method);
    o.submit(request);
    if (timelineOn) mark('request_submitted', -1);
  }

  onConnectionClosed(connection: Connection): void {
    for (const [clientId, owner] of this.clients) {
      if (owner === connection) this.clients.delete(clientId);
    }
  }

  reply(reply: Reply): void {
    this.answer(reply.clientId, reply.requestNumber, { kind: 'reply', reply }, null);
  }

  reject(rejection: Rejection): void {
    const { clientId, requestNumber, code, message, leaderHint } = rejection;
    const scope = { kind: 'request' as const, clientId, requestNumber };
    const error = { scope, code, message, leaderHint };
    this.answer(clientId, requestNumber, { kind: 'error', error }, code);
  }

  /** A request refused before it reached the replica. */
  private refuse(
    connection: Connection,
    request: RequestMessage,
    code: ErrorCode,
    message: string,
  ): void {
    const { metrics, eventLog } = this.options;
    const { clientId, requestNumber } = request;
    metrics.errorsTotal(code).inc();
    eventLog.clientError(code, { client_id: clientId, request: requestNumber });
    const method: RequestMethod = request.operation === 'register' ? 'register' : 'append';
    metrics.requestsTotal(method, 'error').inc();
    const scope = { kind: 'request' as const, clientId, requestNumber };
    connection.send({ kind: 'error', error: { scope, code, message, leaderHint: -1 } });
  }

  private answer(
    clientId: ClientId,
    requestNumber: RequestNumber | number,
    message: ClientMessage,
    code: ErrorCode | null,
  ): void {
    const { metrics, eventLog } = this.options;
    const pending = this.pending.get(clientId);
    let method: RequestMethod = 'append';
    if (pending !== undefined && pending.requestNumber === requestNumber) {
      method = pending.method;
      this.pending.delete(clientId);
      const seconds = (performance.now() - pending.startMs) / 1000;
      if (code === null) metrics.writeDurationSeconds.observe(seconds);
    }
    let status: 'ok' | 'error' = code === null ? 'ok' : 'error';
    if (message.kind === 'reply' && message.reply.result[0] === 0 && method !== 'register') {
      status = 'error'; // A committed kernel error (result tag 0).
      eventLog.committedError(message.reply.result, { client_id: clientId, op: message.reply.op });
    }
    metrics.requestsTotal(method, status).inc();
    if (code !== null) {
      metrics.errorsTotal(code).inc();
      eventLog.clientError(code, { client_id: clientId, request: requestNumber });
    }
    const connection = this.clients.get(clientId);
    if (connection === undefined || connection.closed) return;
    this.options.onReply?.(
      clientId,
      requestNumber,
      message.kind === 'reply' ? message.reply.op : null,
    );
    if (timelineOn) mark('reply_out', message.kind === 'reply' ? message.reply.op : -1);
    connection.send(message);
  }
}
