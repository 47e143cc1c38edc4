// An in-process stand-in for a kimberlite-server node, for the SDK's and the CLI's unit tests
// only (nothing in the SDK imports it). It speaks the real client protocol (net/frame.ts,
// net/client_protocol.ts) over real loopback TCP and applies commands with the real kernel, but
// it has no replication and no disk: every request commits at once.
//
// Like the real node it keeps a client table and executes through the replica's executor
// (vsr/executor.ts: the same session and eviction rules): a request repeated with the same client
// id and request number is answered from the reply cache, not applied again; older numbers get
// KMB_ERR_REQUEST_STALE and skipped ones KMB_ERR_REQUEST_GAP. Tests steer it with hooks that
// choose, per request or query, to answer normally, answer with an error, drop the connection
// before or after applying, or never answer, and they read its counters to see what happened.

import { createServer } from 'node:net';
import type { AddressInfo, Server, Socket } from 'node:net';
import { assert } from '../core/assert.js';
import { constants } from '../core/constants.js';
import { errorCodes } from '../core/errors.js';
import type { ErrorCode } from '../core/errors.js';
import { asOffset, asOp, asTimestampUs, asView } from '../core/types.js';
import type { Op, StreamId, TimestampUs } from '../core/types.js';
import { apply, createState, decodeCommand, encodeResult, streamById } from '../kernel/kernel.js';
import { streamList, tenantById, tenantList } from '../kernel/kernel.js';
import type { State } from '../kernel/kernel.js';
import { FrameDecoder, encodeFrame } from '../net/frame.js';
import { decodeMessage, encodeMessage, messageKind } from '../net/client_protocol.js';
import type {
  ClientMessage,
  EventRecord,
  ErrorScope,
  QueryMessage,
  QueryResult,
  ReplyMessage,
  RequestMessage,
} from '../net/client_protocol.js';
import { ClientTable } from '../vsr/client_table.js';
import { executeRequest } from '../vsr/executor.js';
import type { StateMachine } from '../vsr/replica.js';

/** What the fake does with one request or query. */
export type FakeAction =
  | 'answer'
  /** Close the connection without applying or answering. */
  | 'drop_before'
  /** Apply (commit) the request, then close the connection without answering. */
  | 'drop_after'
  /** Never answer. */
  | 'silent'
  | { readonly error: ErrorCode; readonly leaderHint?: number };

export interface FakeHooks {
  onHello?: (count: number) => FakeAction;
  onRequest?: (request: RequestMessage, count: number) => FakeAction;
  onQuery?: (query: QueryMessage, count: number) => FakeAction;
  /** The node_status document to answer with (default: a single healthy leader, see below). */
  nodeStatus?: (fake: FakeServer) => unknown;
  /** The view_changes document to answer with (default: an empty list). */
  viewChanges?: (fake: FakeServer) => unknown;
}

/**
 * Hooks that answer every request and count how many were received within one turn of the event
 * loop of each other (a request counts as in flight until the next setImmediate): `max()` is the
 * most seen at once, which shows how many writes a client pipelines.
 */
export function inFlightCounter(): { hooks: FakeHooks; max: () => number } {
  let inFlight = 0;
  let inFlightMax = 0;
  const hooks: FakeHooks = {
    onRequest: () => {
      inFlight += 1;
      inFlightMax = Math.max(inFlightMax, inFlight);
      setImmediate(() => (inFlight -= 1));
      return 'answer';
    },
  };
  return { hooks, max: () => inFlightMax };
}

const timestampUsBase = 1_700_000_000_000_000;

export class FakeServer {
  readonly state: State = createState();
  /** Commands applied by the kernel (duplicates answered from the cache are not counted). */
  appliedCount = 0;
  helloCount = 0;
  requestCount = 0;
  queryCount = 0;
  /** Every request received, in order. */
  readonly requests: RequestMessage[] = [];
  /** The replica's client table, with the production bound: sessions are evicted as there. */
  private readonly table = new ClientTable(constants.clientSessionCountMax);
  /** The events of each stream, as stored (tests may tamper with them). */
  readonly streamEvents = new Map<StreamId, EventRecord[]>();
  private readonly sockets = new Set<Socket>();
  private op = 0;

  private constructor(
    private readonly server: Server,
    readonly hooks: FakeHooks,
    readonly clusterName: string,
    readonly nodeId: number,
  ) {
    server.on('connection', (socket) => this.serve(socket));
  }

  static async start(
    options: { hooks?: FakeHooks; clusterName?: string; nodeId?: number } = {},
  ): Promise<FakeServer> {
    const server = createServer();
    const fake = new FakeServer(
      server,
      options.hooks ?? {},
      options.clusterName ?? 'test',
      options.nodeId ?? 0,
    );
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return fake;
  }

  /** "127.0.0.1:port" */
  get address(): string {
    const info = this.server.address() as AddressInfo;
    return `127.0.0.1:${info.port}`;
  }

  /** Closes every connection (the listener keeps listening). */
  dropConnections(): void {
    for (const socket of this.sockets) socket.destroy();
  }

  async close(): Promise<void> {
    this.dropConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private serve(socket: Socket): void {
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    const decoder = new FrameDecoder();
    socket.on('data', (data: Buffer) => {
      const { frames, error } = decoder.push(data);
      for (const frame of frames) {
        if (socket.destroyed) return;
        let message: ClientMessage;
        try {
          message = decodeMessage(frame.kind, frame.body);
        } catch {
          this.fail(socket, errorCodes.frame_malformed, 'malformed message');
          return;
        }
        this.onMessage(socket, message);
      }
      if (error !== null) this.fail(socket, error.code, error.message);
    });
  }

  private send(socket: Socket, message: ClientMessage): void {
    if (!socket.destroyed)
      socket.write(encodeFrame(messageKind[message.kind], encodeMessage(message)));
  }

  private sendError(socket: Socket, scope: ErrorScope, code: ErrorCode, text: string, hint = -1) {
    this.send(socket, { kind: 'error', error: { scope, code, message: text, leaderHint: hint } });
  }

  private fail(socket: Socket, code: ErrorCode, text: string): void {
    this.sendError(socket, { kind: 'connection' }, code, text);
    socket.end();
  }

  private onMessage(socket: Socket, message: ClientMessage): void {
    if (message.kind === 'hello') return this.onHello(socket);
    if (message.kind === 'request') return this.onRequest(socket, message.request);
    if (message.kind === 'query') return this.onQuery(socket, message.query);
    this.fail(socket, errorCodes.frame_malformed, `unexpected ${message.kind}`);
  }

  private onHello(socket: Socket): void {
    this.helloCount += 1;
    const action = this.hooks.onHello?.(this.helloCount) ?? 'answer';
    if (action === 'silent') return;
    if (action === 'drop_before' || action === 'drop_after') return void socket.destroy();
    if (action !== 'answer') {
      return this.sendError(socket, { kind: 'connection' }, action.error, 'refused');
    }
    const helloOk = {
      protocolVersion: 1,
      clusterName: this.clusterName,
      nodeId: this.nodeId,
      replicaCount: 1,
      view: asView(0),
      leader: this.nodeId,
    };
    this.send(socket, { kind: 'hello_ok', helloOk });
  }

  private onRequest(socket: Socket, request: RequestMessage): void {
    this.requestCount += 1;
    this.requests.push(request);
    const action = this.hooks.onRequest?.(request, this.requestCount) ?? 'answer';
    if (action === 'silent') return;
    if (action === 'drop_before') return void socket.destroy();
    const scope = {
      kind: 'request' as const,
      clientId: request.clientId,
      requestNumber: request.requestNumber,
    };
    if (typeof action === 'object') {
      return this.sendError(socket, scope, action.error, 'injected', action.leaderHint ?? -1);
    }
    const answer = this.commit(request);
    if (action === 'drop_after') return void socket.destroy();
    if ('reply' in answer) this.send(socket, { kind: 'reply', reply: answer.reply });
    else this.sendError(socket, scope, answer.code, answer.message);
  }

  /**
   * Admission as a real node checks it, then the replica's executor (vsr/executor.ts) over the
   * client table and the kernel: a reply, or the error a real node would send.
   */
  private commit(
    request: RequestMessage,
  ): { reply: ReplyMessage } | { code: ErrorCode; message: string } {
    const session = this.table.get(request.clientId);
    if (request.operation === 'register') {
      if (session !== undefined) return { reply: session.reply };
    } else {
      if (session === undefined) {
        return { code: errorCodes.session_not_registered, message: 'no such session' };
      }
      if (request.requestNumber === session.requestNumber) return { reply: session.reply };
      if (request.requestNumber < session.requestNumber) {
        return { code: errorCodes.request_stale, message: 'stale request number' };
      }
      if (request.requestNumber > session.requestNumber + 1) {
        return { code: errorCodes.request_gap, message: 'request number skipped' };
      }
    }
    const op = this.nextOp();
    const site = { op, timestampUs: this.timestampOf(op), requestIndex: 0 };
    const outcome = executeRequest(this.table, this.machine, site, request);
    assert(outcome.kind !== 'skipped', 'admission lets through only what applies');
    return { reply: outcome.reply };
  }

  /** The kernel as the executor's state machine; it keeps each stream's events as stored. */
  private readonly machine: StateMachine<null> = {
    apply: (body, meta) => {
      const command = decodeCommand(body);
      const outcome = apply(this.state, command, meta);
      this.appliedCount += 1;
      const result = outcome.result;
      if (command.kind === 'append' && result.status === 'ok' && result.kind === 'append') {
        const stored = this.streamEvents.get(command.streamId) ?? [];
        const first = result.firstOffset;
        command.events.forEach((data, i) => {
          stored.push({
            offset: asOffset(first + i),
            timestampUs: meta.timestampUs,
            data: data.slice(),
          });
        });
        this.streamEvents.set(command.streamId, stored);
      }
      return { result: encodeResult(outcome.result), output: null };
    },
  };

  private nextOp(): Op {
    this.op += 1;
    return asOp(this.op);
  }

  private timestampOf(op: Op): TimestampUs {
    return asTimestampUs(timestampUsBase + op * 1000 + 1);
  }

  /** The op of the last command committed here (0 before any). */
  get opNumber(): number {
    return this.op;
  }

  /** The status a real single node would report in this fake's place: a normal leader. */
  defaultNodeStatus(): Record<string, unknown> {
    return {
      node_id: this.nodeId,
      status: 'normal',
      view: 0,
      commit_number: this.op,
      op_number: this.op,
      is_leader: true,
      leader: this.nodeId,
      cluster_size: 1,
      healthy_replicas: 1,
      cluster_name: this.clusterName,
      cluster_members: [
        {
          node_id: this.nodeId,
          address: this.address,
          connected: true,
          is_leader: true,
          self: true,
        },
      ],
      commit_timestamp_us: this.op === 0 ? 0 : this.timestampOf(asOp(this.op)),
    };
  }

  private onQuery(socket: Socket, message: QueryMessage): void {
    this.queryCount += 1;
    const action = this.hooks.onQuery?.(message, this.queryCount) ?? 'answer';
    if (action === 'silent') return;
    if (action === 'drop_before' || action === 'drop_after') return void socket.destroy();
    const scope = { kind: 'query' as const, queryId: message.queryId };
    if (action !== 'answer') {
      return this.sendError(socket, scope, action.error, 'injected', action.leaderHint ?? -1);
    }
    const answer = this.answerQuery(message);
    if ('code' in answer) return this.sendError(socket, scope, answer.code, answer.message);
    this.send(socket, {
      kind: 'query_result',
      queryResult: { queryId: message.queryId, result: answer },
    });
  }

  private answerQuery(message: QueryMessage): QueryResult | { code: ErrorCode; message: string } {
    const query = message.query;
    if (query.kind === 'list_tenants') {
      const tenants = tenantList(this.state).map((t) => ({
        tenantId: t.id,
        name: t.name,
        createdAtUs: t.createdAtUs,
        sealed: t.sealed,
      }));
      return { kind: 'list_tenants', tenants };
    }
    if (query.kind === 'node_status') {
      const document = this.hooks.nodeStatus?.(this) ?? this.defaultNodeStatus();
      return { kind: 'node_status', json: JSON.stringify(document) };
    }
    if (query.kind === 'view_changes') {
      return { kind: 'view_changes', json: JSON.stringify(this.hooks.viewChanges?.(this) ?? []) };
    }
    if (tenantById(this.state, query.tenantId) === undefined) {
      return { code: errorCodes.tenant_not_found, message: `tenant ${query.tenantId} not found` };
    }
    if (query.kind === 'list_streams') {
      const streams = streamList(this.state, query.tenantId).map((s) => ({
        streamId: s.id,
        tenantId: s.tenantId,
        name: s.name,
        dataClass: s.dataClass,
        createdAtUs: s.createdAtUs,
        nextOffset: s.nextOffset,
        chainHead: s.chainHead,
      }));
      return { kind: 'list_streams', streams };
    }
    const stream = streamById(this.state, query.tenantId, query.streamId);
    if (stream === undefined) {
      return { code: errorCodes.stream_not_found, message: `stream ${query.streamId} not found` };
    }
    const all = this.streamEvents.get(stream.id) ?? [];
    const events = all.slice(query.fromOffset, query.fromOffset + query.limit);
    return { kind: 'read_stream', events, nextOffset: stream.nextOffset };
  }
}
