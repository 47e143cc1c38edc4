// The node shell: one replica process. It wires the pure replica and kernel to the real world —
// the disk (superblock + journal), the clock (ticks and wall time), client sockets, metrics and
// logs — and performs the replica's effects in order. Start-up: open or create the superblock,
// open the journal (a torn tail is truncated, corruption refuses to start), replay every
// durable prepare through the replica (rebuilding kernel state, client sessions and the read
// index), then listen. A client's write is answered only after the replica commits it, which
// for a prepare requires its journal append — write and fdatasync — to have completed.
// Reads (queries) are served from committed state and the read index.
//
// Effects are performed in order. A journal_truncate is a barrier: journal appends and superblock
// writes issued after it start only once it is durable (message.ts). Journal reads go straight
// to the journal (they read committed records, which a truncation never touches). The node is
// one replica of a cluster of --cluster-peers (a single node is a cluster of one): send effects
// travel over the replica bus (net/replica_bus.ts) to the peers, whose links arrive on the same
// port as clients and are handed to the bus after their replica hello.

import { mkdir } from 'node:fs/promises';
import { assert } from '../core/assert.js';
import { DecodeError } from '../core/binary.js';
import { checksumEqual } from '../core/checksum.js';
import { errorCodes, KmbError, kmbError } from '../core/errors.js';
import type { ErrorCode } from '../core/errors.js';
import { clusterIdFromName, rootPrepare } from '../core/header.js';
import type { Prepare } from '../core/header.js';
import { asOp, asReplicaIndex, asView } from '../core/types.js';
import type { ClientId, Op, View } from '../core/types.js';
import { activeTenantCount, admitCommand, createState, stateDigest } from '../kernel/kernel.js';
import type { State } from '../kernel/kernel.js';
import type { Connection } from '../net/connection.js';
import { ClientPort } from '../net/client_port.js';
import type { ClientPortLimits } from '../net/client_port.js';
import { ReplicaBus, replicaProtocolVersion } from '../net/replica_bus.js';
import { decodeReplicaMessage, encodeReplicaMessage } from '../net/replica_codec.js';
import { protocolVersion } from '../net/client_protocol.js';
import type {
  ClientMessage,
  Consistency,
  Query,
  QueryResult,
  RequestMessage,
} from '../net/client_protocol.js';
import type { TraceParent } from '../core/trace_parent.js';
import type { Logger } from '../observability/logger.js';
import { Metrics } from '../observability/metrics.js';
import type { RequestMethod } from '../observability/metrics.js';
import { Journal } from '../storage/journal.js';
import { Superblock } from '../storage/superblock.js';
import type { FileIO } from '../storage/file_io.js';
import { Replica } from '../vsr/replica.js';
import type { Effect, JournalReadContext, ReplicaEvent, ReplicaMessage } from '../vsr/message.js';
import { kernelStateMachine } from './kernel_state_machine.js';
import type { KernelOutput } from './kernel_state_machine.js';
import { QueryService } from './query_service.js';
import { StreamIndex } from './stream_index.js';
import { ViewChangeHistory } from './view_change_history.js';
import { NodeMetrics } from './node_metrics.js';
import { logReplicaRejections, onBusRejected } from './peer_rejections.js';
import { NodeEventLog } from './node_event_log.js';
import { createNodeTracing } from './node_tracing.js';
import type { NodeTracing, NodeTracingConfig } from './node_tracing.js';
import type { Tracing } from '../observability/tracing.js';
import type { ViewChangeRecord } from './view_change_history.js';
import { parseHostPort } from './config.js';
import { DiskSpace } from './disk_space.js';
import {
  checkJournalDir,
  judgeJournal,
  openOrFormatSuperblock,
  refusedJournal,
} from './storage_startup.js';
import {
  bindClientPortGauges,
  clientPortEvents,
  clientPortLimitsOf,
} from './client_port_events.js';
import { SessionAdmission, sessionAdmissionLimitsDefault } from './session_admission.js';
import type { SessionAdmissionLimits } from './session_admission.js';

export interface NodeConfig {
  readonly clusterName: string;
  readonly nodeId: number;
  /** Every replica's host:port in replica order; a single node lists only itself. */
  readonly peers: readonly string[];
  readonly address: string;
  /** host:port of the ops HTTP server; null to run without it. */
  readonly metricsAddress: string | null;
  readonly dataDir: string;
  readonly segmentSizeBytesMax: number;
  readonly tickMs: number;
  readonly heartbeatMs: number;
  readonly electionTimeoutMs: number;
  readonly pipelinePrepareCountMax: number;
  readonly prepareRequestCountMax: number;
  readonly clientSessionCountMax: number;
  readonly connectionCountMax: number;
  /** The client port's timeouts and frame buffer budget ([server]); defaults when absent. */
  readonly clientPort?: Partial<Omit<ClientPortLimits, 'connectionCountMax'>>;
  /** Per-connection session limits ([server]); defaults when absent. */
  readonly sessionAdmission?: SessionAdmissionLimits;
  readonly shutdownTimeoutMs: number;
  /** Where spans go ([telemetry] tracing_*); absent or null: tracing off. */
  readonly tracing?: NodeTracingConfig | null;
  /** [storage] disk_free_bytes_min: below it writes are refused (disk_space.ts). */
  readonly diskFreeBytesMin?: number;
  /** --format: format a non-empty directory that holds no kimberlite data (storage_startup). */
  readonly format?: boolean;
}

export interface NodeDependencies {
  readonly config: NodeConfig;
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly io?: FileIO;
  /** Wall-clock microseconds; injected so tests can control time. */
  readonly realtimeUs?: () => number;
  /** Called for a failure that leaves the node unable to continue safely (failed fsync). */
  readonly onFatal?: (error: unknown) => void;
  /** Observes each reply just before it is written to the client (tests record ordering). */
  readonly onReply?: (clientId: ClientId, requestNumber: number, op: number | null) => void;
  /** A tracer to use instead of one built from config.tracing (tests). */
  readonly tracing?: Tracing;
  /** Tests only: perform no telemetry `event` effect, to prove that no data depends on one. */
  readonly dropTelemetryEvents?: boolean;
}

interface PendingRequest {
  readonly requestNumber: number;
  readonly method: RequestMethod;
  /** When the request arrived (performance.now(), ms). */
  readonly startMs: number;
}

/**
 * A replica that knows of more committed ops than it has applied, by more than this, answers
 * /health/ready with 503 `catching_up`: its reads would be far behind. Under a steady load a
 * healthy backup trails by a few pipelines of prepares, far below this.
 */
const readyCommitLagOpsMax = 1024;

/** What a client-error log line says about the request it answers. */
function clientErrorFields(request: RequestMessage): Record<string, unknown> {
  return { client_id: request.clientId, request: request.requestNumber };
}

function defaultRealtimeUs(): number {
  return Math.floor((performance.timeOrigin + performance.now()) * 1000);
}

export class KimberliteNode {
  readonly config: NodeConfig;
  readonly metrics: Metrics;
  private readonly logger: Logger;
  /** Connections, framing and peers: target kmb_net (docs/logging.md). */
  private readonly netLogger: Logger;
  private readonly deps: NodeDependencies;
  private readonly state: State;
  private readonly index = new StreamIndex();
  private readonly viewChanges = new ViewChangeHistory();
  private readonly replica: Replica<KernelOutput>;
  private readonly queries: QueryService;
  /** Replica events, effects and sockets → vsr_* / kimberlite_* instruments. */
  private readonly nodeMetrics: NodeMetrics;
  private readonly eventLog: NodeEventLog;
  /** Null when tracing is off: every tracing call is behind this one check. */
  private readonly tracing: NodeTracing | null;
  private readonly clients = new Map<ClientId, Connection>();
  private readonly pending = new Map<ClientId, PendingRequest>();
  /** The storage work later appends and superblock writes wait for (a truncation), or null. */
  private barrier: Promise<void> | null = null;
  private clientPort: ClientPort | null = null;
  private readonly sessionAdmission: SessionAdmission;
  private bus: ReplicaBus | null = null;
  /** The primary's own view of whether a quorum answers it (from primary_quorum events). */
  private quorumReachable = true;
  /** The last replica message encoded (see encodeOnce). */
  private lastEncoded: { message: ReplicaMessage; tag: number; body: Uint8Array } | null = null;
  /** A new primary serves reads once it has executed its view's log up to this op. */
  private readableFromOp = 0;
  /** The timestamp of the prepare at the commit number, for replication lag in ms. */
  private commitTimestampUs = 0;
  /** The superblock write in flight (the replica allows one at a time), for stop() to await. */
  private superblockWriting: Promise<unknown> = Promise.resolve();
  private tickTimer: NodeJS.Timeout | null = null;
  private shuttingDown = false;
  private listening = false;
  private boundAddress = '';

  private constructor(
    deps: NodeDependencies,
    private readonly superblock: Superblock,
    private readonly journal: Journal,
    /** What start-up found: formatted (no earlier incarnation ran), journal intact. */
    private readonly opened: { readonly formatted: boolean; readonly journalIntact: boolean },
    /** Whether the data directory's disk is full: writes refused, reads served. */
    private readonly disk: DiskSpace,
  ) {
    this.deps = deps;
    this.config = deps.config;
    this.metrics = deps.metrics;
    this.logger = deps.logger;
    this.netLogger = deps.logger.child({}, 'kimberlite_net');
    this.sessionAdmission = new SessionAdmission({
      limits: deps.config.sessionAdmission ?? sessionAdmissionLimitsDefault,
      logger: this.netLogger,
      refused: deps.metrics.clientPort.sessionsRefused,
    });
    this.state = createState();
    const cluster = clusterIdFromName(deps.config.clusterName);
    this.replica = new Replica<KernelOutput>({
      cluster,
      replica: asReplicaIndex(deps.config.nodeId),
      replicaCount: deps.config.peers.length,
      stateMachine: kernelStateMachine(this.state),
      realtimeUs: deps.realtimeUs ?? defaultRealtimeUs,
      view: asView(superblock.state.view),
      logView: asView(superblock.state.logView),
      commit: asOp(superblock.state.commit),
      rootChecksum: rootPrepare(cluster).header.checksum,
      // Election jitter and nonces: randomness at the edge, where it is allowed.
      prng: { float: () => Math.random() },
      pipelinePrepareCountMax: deps.config.pipelinePrepareCountMax,
      prepareRequestCountMax: deps.config.prepareRequestCountMax,
      clientSessionCountMax: deps.config.clientSessionCountMax,
      heartbeatTicks: Math.max(1, Math.round(deps.config.heartbeatMs / deps.config.tickMs)),
      electionTimeoutTicks: Math.max(
        2,
        Math.round(deps.config.electionTimeoutMs / deps.config.tickMs),
      ),
      tickUs: deps.config.tickMs * 1000,
      // With peers, prepares carry the time a quorum of clocks agrees on (Marzullo), and a
      // background scrubber re-verifies the committed journal, repairing from peers.
      clockSync: deps.config.peers.length > 1,
      scrubReadsPerTickMax: deps.config.peers.length > 1 ? 1 : 0,
    });
    this.queries = new QueryService(this.state, this.index, journal);
    this.nodeMetrics = new NodeMetrics({
      metrics: deps.metrics,
      nodeId: deps.config.nodeId,
      replicaCount: deps.config.peers.length,
      dataDir: deps.config.dataDir,
    });
    this.nodeMetrics.onStorageOpened(superblock.report, journal.recovery.truncated);
    this.nodeMetrics.bind(this.replica);
    this.eventLog = new NodeEventLog(deps.logger, () => this.replica);
    this.tracing = createNodeTracing({
      config: deps.config.tracing,
      tracing: deps.tracing,
      nodeId: deps.config.nodeId,
      logger: deps.logger,
      view: () => this.replica.view,
    });
  }

  /** Opens storage, replays the journal and starts serving clients. */
  static async start(deps: NodeDependencies): Promise<KimberliteNode> {
    const { config, logger } = deps;
    assert(config.nodeId < config.peers.length, 'node id indexes the peer list');
    await mkdir(config.dataDir, { recursive: true });
    const { superblock, formatted } = await KimberliteNode.openSuperblock(deps);
    const cluster = clusterIdFromName(config.clusterName);
    const startedNs = process.hrtime.bigint();
    const storageLog = logger.child({}, 'kimberlite_storage');
    const check = {
      dataDir: config.dataDir,
      superblock,
      formatted,
      alone: config.peers.length === 1,
      logger: storageLog,
      io: deps.io,
    };
    const journalDirPresent = await checkJournalDir(check);
    const disk = await DiskSpace.start({
      dataDir: config.dataDir,
      freeBytesMin: config.diskFreeBytesMin,
      logger: storageLog,
      instruments: deps.metrics.disk,
    });
    superblock.onFull = (full, error) => disk.setWaiting('superblock', full, error);
    const journal = await Journal.open({
      dir: config.dataDir,
      cluster,
      segmentSizeBytesMax: config.segmentSizeBytesMax,
      // With peers, a corrupt record is cut and fetched again from them; alone, refuse to start.
      onCorruption: config.peers.length > 1 ? 'cut' : 'refuse',
      // A journal ending below the superblock's commit lost records (storage_startup.ts).
      commitFloor: superblock.state.commit,
      onFull: (full, error) => disk.setWaiting('journal', full, error),
      onFreeSpaceError: (error) =>
        storageLog.warn('Journal stopped laying down free space; records now extend the file', {
          error: error instanceof Error ? error.message : String(error),
        }),
      ...(deps.io === undefined ? {} : { io: deps.io }),
    }).catch((error: unknown) => refusedJournal(check, error));
    deps.metrics.logFreeSpaceBytes.bind(() => journal.freeSpaceBytes);
    const journalIntact = judgeJournal({ ...check, journal, journalDirPresent });
    const node = new KimberliteNode(deps, superblock, journal, { formatted, journalIntact }, disk);
    await node.replay();
    const replaySeconds = Number(process.hrtime.bigint() - startedNs) / 1e9;
    storageLog.info('Recovered journal', {
      op: node.replica.op,
      commit_number: node.replica.commitMax,
      records: journal.recovery.recordCount,
      segments: journal.segmentCount,
      bytes: journal.sizeBytes,
      seconds: Number(replaySeconds.toFixed(3)),
    });
    await node.listen();
    return node;
  }

  /** Opens the superblock, or formats an empty directory (or any, with --format): see there. */
  private static openSuperblock(
    deps: NodeDependencies,
  ): Promise<{ superblock: Superblock; formatted: boolean }> {
    const { config } = deps;
    return openOrFormatSuperblock({
      dataDir: config.dataDir,
      clusterName: config.clusterName,
      nodeId: config.nodeId,
      replicaCount: config.peers.length,
      clientSessionCountMax: config.clientSessionCountMax,
      format: config.format === true,
      logger: deps.logger,
      io: deps.io,
    });
  }

  private async replay(): Promise<void> {
    for await (const prepare of this.journal.entries(1)) {
      this.perform(this.replica.onRecoveredPrepare(prepare));
    }
    // Journal.open verified every record and cut a torn (never acknowledged) tail — the replay
    // then held every record this replica ever acknowledged — or, in a cluster, cut at a corrupt
    // record or found fewer ops than the superblock's commit (judgeJournal): then the journal is
    // not intact and the replica must not vote until repaired.
    this.perform(
      this.replica.finishRecovery({
        journalIntact: this.opened.journalIntact,
        formatted: this.opened.formatted,
      }),
    );
    this.nodeMetrics.replayFinished();
    this.metrics.logSizeBytes.set(this.journal.sizeBytes);
    this.metrics.activeTenants.set(activeTenantCount(this.state));
    this.updateConsensusGauges();
    if (this.replica.status === 'normal' && this.replica.isPrimary) {
      this.eventLog.becameLeader(this.replica.view, this.replica.op, this.replica.commitMax);
    }
  }

  private async listen(): Promise<void> {
    const { host, port } = parseHostPort(this.config.address);
    // The listener, first-frame demux, timeouts and limits live in net/client_port.ts.
    const limits = clientPortLimitsOf(this.config.connectionCountMax, this.config.clientPort);
    const clientPort = await ClientPort.listen({
      host,
      port,
      limits,
      handlers: {
        onClientMessage: (c, m) => this.onClientMessage(c, m),
        onConnectionClosed: (c) => this.onConnectionClosed(c),
        onReplicaHello: (socket, hello, decoder) => {
          if (this.bus === null) return false;
          this.bus.acceptInbound(socket, hello, decoder);
          return true;
        },
        onClientSocket: (socket) => this.nodeMetrics.trackSocket(socket),
      },
      events: clientPortEvents(this.metrics, this.netLogger),
    });
    bindClientPortGauges(this.metrics, clientPort, limits);
    this.boundAddress = `${host.includes(':') ? `[${host}]` : host}:${clientPort.boundPort}`;
    this.clientPort = clientPort;
    this.bus = this.startBus();
    this.listening = true;
    this.tickTimer = setInterval(() => this.perform(this.replica.onTick()), this.config.tickMs);
  }

  /** Links to every other replica over the same port clients use (net/replica_bus.ts). */
  private startBus(): ReplicaBus | null {
    if (this.config.peers.length === 1) return null;
    const peers = this.config.peers.flatMap((address, replica) => {
      if (replica === this.config.nodeId) return [];
      const { host, port } = parseHostPort(address);
      return [{ replica, host, port }];
    });
    const bus = new ReplicaBus({
      self: {
        protocolVersion: replicaProtocolVersion,
        clusterName: this.config.clusterName,
        cluster: this.replica.cluster,
        replica: this.config.nodeId,
        replicaCount: this.config.peers.length,
      },
      peers,
      handlers: {
        onMessage: (from, tag, body) => this.onReplicaMessage(from, tag, body),
        onLinkChange: (peer, up) =>
          this.netLogger.info(up ? 'Replica link up' : 'Replica link down', { peer }),
        onRejected: (remote, reason, kind) => {
          const deps = { metrics: this.metrics, nodeMetrics: this.nodeMetrics };
          onBusRejected({ ...deps, logger: this.netLogger }, remote, reason, kind);
        },
      },
    });
    bus.start();
    return bus;
  }

  private onReplicaMessage(from: number, tag: number, body: Uint8Array): void {
    if (this.disk.dropsReplicaMessage(tag, this.journal.pendingCount)) return; // disk_space.ts
    let message: ReplicaMessage;
    try {
      message = decodeReplicaMessage(tag, body);
    } catch (error) {
      if (!(error instanceof DecodeError)) throw error;
      this.nodeMetrics.onUndecodable(body.length);
      this.netLogger.warnRateLimited(
        `replica-decode:${from}`,
        10_000,
        'Malformed replica message',
        {
          peer: from,
          reason: error.message,
        },
      );
      return;
    }
    this.nodeMetrics.onReceive(message, body.length);
    if (message.replica !== from) {
      this.nodeMetrics.onRejected('sender_mismatch');
      this.netLogger.warnRateLimited(`replica-spoof:${from}`, 10_000, 'Replica message sender', {
        peer: from,
        claimed: message.replica,
      });
      return;
    }
    const effects = this.replica.onMessage(message);
    logReplicaRejections(this.netLogger, from, effects);
    this.perform(effects);
  }

  /** The client protocol address actually bound (port 0 resolved). */
  get address(): string {
    return this.boundAddress;
  }

  // ----- connections and messages -----

  private onConnectionClosed(connection: Connection): void {
    for (const [clientId, owner] of this.clients) {
      if (owner === connection) this.clients.delete(clientId);
    }
  }

  private helloed = new WeakSet<Connection>();

  private onClientMessage(connection: Connection, message: ClientMessage): void {
    if (message.kind === 'hello') {
      this.onHello(connection, message.hello.protocolVersion, message.hello.clusterName);
      return;
    }
    if (!this.helloed.has(connection)) {
      connection.fail(errorCodes.frame_malformed, 'the first message must be hello');
      return;
    }
    if (message.kind === 'request') this.onRequest(connection, message.request);
    else if (message.kind === 'query')
      void this.onQuery(
        connection,
        message.query.queryId,
        message.query.query,
        message.query.consistency ?? { kind: 'linearizable' },
        message.query.traceParent,
      );
    else connection.fail(errorCodes.frame_malformed, `unexpected ${message.kind} from a client`);
  }

  private onHello(connection: Connection, version: number, clusterName: string): void {
    if (version !== protocolVersion) {
      connection.fail(
        errorCodes.protocol_version,
        `protocol version ${version} is not supported; this node speaks ${protocolVersion}`,
      );
      return;
    }
    if (clusterName !== '' && clusterName !== this.config.clusterName) {
      connection.fail(
        errorCodes.cluster_mismatch,
        `this node belongs to cluster "${this.config.clusterName}", not "${clusterName}"`,
      );
      return;
    }
    this.helloed.add(connection);
    connection.send({
      kind: 'hello_ok',
      helloOk: {
        protocolVersion,
        clusterName: this.config.clusterName,
        nodeId: this.config.nodeId,
        replicaCount: this.replica.replicaCount,
        view: this.replica.view,
        leader: this.replica.primaryIndex,
      },
    });
  }

  private onRequest(connection: Connection, request: RequestMessage): void {
    if (this.disk.full && this.replica.isPrimary) {
      // A full disk: no write (register included) enters the log until space returns.
      const refusal = this.disk.refusal();
      this.rejectRequest(connection, request, refusal.code, refusal.message);
      return;
    }
    const { clientId, requestNumber } = request;
    let method: RequestMethod = 'register';
    if (request.operation === 'command') {
      // Undecodable bytes, fields over their bounds and bad new names never reach the log.
      const admission = admitCommand(request.body);
      if (!admission.admitted) {
        const { code, message } = admission.error;
        const fields = { code, reason: message };
        const key = `admission:${code}`;
        this.netLogger.warnRateLimited(key, 10_000, 'Request refused at admission', fields);
        this.rejectRequest(connection, request, code, message);
        return;
      }
      method = admission.kind;
    }
    if (this.shuttingDown) {
      this.rejectRequest(
        connection,
        request,
        errorCodes.shutting_down,
        'node is shutting down; retry against another replica or after restart',
      );
      return;
    }
    // Sessions per connection and their registration rate (session_admission.ts).
    const refused =
      request.operation === 'register'
        ? this.sessionAdmission.admit(connection, clientId, connection.remoteAddress)
        : null;
    if (refused !== null) {
      this.rejectRequest(connection, request, errorCodes.limit_exceeded, refused);
      return;
    }
    this.clients.set(clientId, connection);
    const pending = this.pending.get(clientId);
    if (pending === undefined || pending.requestNumber !== requestNumber) {
      this.pending.set(clientId, { requestNumber, method, startMs: performance.now() });
    }
    if (this.tracing !== null) this.tracing.onRequest(request, method);
    this.perform(this.replica.onRequest({ ...request }));
  }

  private rejectRequest(
    connection: Connection,
    request: RequestMessage,
    code: ErrorCode,
    message: string,
  ): void {
    this.metrics.errorsTotal(code).inc();
    this.eventLog.clientError(code, clientErrorFields(request));
    const method: RequestMethod = request.operation === 'register' ? 'register' : 'append';
    this.metrics.requestsTotal(method, 'error').inc();
    connection.send({
      kind: 'error',
      error: {
        scope: {
          kind: 'request',
          clientId: request.clientId,
          requestNumber: request.requestNumber,
        },
        code,
        message,
        leaderHint: -1,
      },
    });
  }

  /** The view changes this node saw, oldest first (bounded). */
  viewChangeHistory(): ViewChangeRecord[] {
    return this.viewChanges.list();
  }

  /** Operator queries are answered from the node's own state; the rest by the query service. */
  private async runQuery(query: Query, consistency: Consistency): Promise<QueryResult> {
    if (query.kind === 'node_status') {
      return { kind: 'node_status', json: JSON.stringify(this.status()) };
    }
    if (query.kind === 'view_changes') {
      return { kind: 'view_changes', json: JSON.stringify(this.viewChangeHistory()) };
    }
    if (consistency.kind === 'stale') this.checkStaleReadable(consistency.lagOpsMax);
    else this.checkReadable();
    return this.queries.run(query);
  }

  /**
   * Reads are linearizable: served only by a normal primary that a quorum still answers and
   * that has executed its view's log (so it reflects every write acknowledged before the read).
   * A deposed primary notices lost quorum before the others can elect a successor (the quorum
   * timeout is shorter than the election timeout), so it stops serving first.
   */
  /** A stale read: any normal replica, if it trails its known commit by at most lagOpsMax. */
  private checkStaleReadable(lagOpsMax: number): void {
    if (this.replica.status !== 'normal') {
      throw kmbError('not_ready', `replica is ${this.replica.status}; retry shortly`);
    }
    const lagOps = this.replica.commitMax - this.replica.commitMin;
    if (lagOps > lagOpsMax) {
      throw kmbError(
        'not_ready',
        `replica trails its known commit by ${lagOps} ops (bound ${lagOpsMax}); retry shortly`,
      );
    }
  }

  private checkReadable(): void {
    if (this.replica.status !== 'normal') {
      throw kmbError('not_ready', `replica is ${this.replica.status}; retry shortly`);
    }
    if (!this.replica.isPrimary) {
      throw kmbError('not_leader', `replica ${this.replica.primaryIndex} is leader`);
    }
    if (!this.quorumReachable) {
      throw kmbError('not_ready', 'the leader cannot reach a quorum; retry shortly');
    }
    if (this.replica.commitMin < this.readableFromOp) {
      throw kmbError('not_ready', 'the new leader is still executing its log; retry shortly');
    }
  }

  private async onQuery(
    connection: Connection,
    queryId: number,
    query: Query,
    consistency: Consistency,
    traceParent?: TraceParent,
  ): Promise<void> {
    const startMs = performance.now();
    const span =
      this.tracing === null ? null : this.tracing.startQuery(query, traceParent, consistency.kind);
    let errorCode: ErrorCode | null = null;
    const method: RequestMethod = query.kind === 'read_stream' ? 'read' : query.kind;
    try {
      const result = await this.runQuery(query, consistency);
      this.metrics.requestsTotal(method, 'ok').inc();
      connection.send({ kind: 'query_result', queryResult: { queryId, result } });
    } catch (error) {
      if (!(error instanceof KmbError)) throw error;
      errorCode = error.code;
      this.eventLog.clientError(error.code, { query_id: queryId, query: query.kind });
      this.metrics.requestsTotal(method, 'error').inc();
      this.metrics.errorsTotal(error.code).inc();
      connection.send({
        kind: 'error',
        error: {
          scope: { kind: 'query', queryId },
          code: error.code,
          message: error.message,
          leaderHint: error.code === errorCodes.not_leader ? this.replica.primaryIndex : -1,
        },
      });
    } finally {
      this.metrics.queryDurationSeconds.observe((performance.now() - startMs) / 1000);
      if (span !== null && this.tracing !== null) this.tracing.endQuery(span, errorCode);
    }
  }

  // ----- effects -----

  private perform(effects: readonly Effect<KernelOutput>[]): void {
    for (const effect of effects) {
      switch (effect.kind) {
        case 'journal_append': {
          const prepare = effect.prepare;
          this.afterBarrier(() => this.append(prepare));
          break;
        }
        case 'journal_truncate': {
          const opMax = effect.opMax;
          // The durable commit: the replica may execute past opMax before this effect is
          // performed (it cut and refilled its log in one step), never before it was emitted.
          const commitFloor = this.superblock.state.commit;
          this.afterBarrier(() => this.journal.truncate(opMax, { commitFloor }));
          break;
        }
        case 'journal_read':
          this.read(effect.op, effect.checksum, effect.context);
          break;
        case 'superblock_write': {
          const { view, logView, commit } = effect;
          this.afterBarrier(() => this.writeSuperblock({ view, logView, commit }));
          break;
        }
        case 'send': {
          const { tag, body } = this.encodeOnce(effect.message);
          const sent = this.bus?.send(effect.target, tag, body) ?? false;
          this.nodeMetrics.onSend(effect.message, body.length, sent);
          break;
        }
        case 'reply':
          this.reply(
            effect.reply.clientId,
            effect.reply.requestNumber,
            {
              kind: 'reply',
              reply: effect.reply,
            },
            'ok',
            null,
          );
          break;
        case 'reject':
          this.reply(
            effect.clientId,
            effect.requestNumber,
            {
              kind: 'error',
              error: {
                scope: {
                  kind: 'request',
                  clientId: effect.clientId,
                  requestNumber: effect.requestNumber,
                },
                code: effect.code,
                message: effect.message,
                leaderHint: effect.leaderHint,
              },
            },
            'error',
            effect.code,
          );
          break;
        case 'applied':
          if (effect.output !== null) this.onApplied(effect.output);
          break;
        case 'reads_ready':
          this.readableFromOp = effect.op;
          this.quorumReachable = true;
          break;
        case 'event':
          if (this.deps.dropTelemetryEvents !== true) this.onReplicaEvent(effect.event);
          break;
      }
      if (this.tracing !== null) this.tracing.onEffect(effect);
    }
    this.metrics.requestsInFlight.set(this.replica.pendingRequestCount);
  }

  /**
   * Runs `work` now, or after the storage barrier (a truncation in progress) and whatever already
   * waits for it, in order. A failure of the barrier's work is fatal.
   */
  private afterBarrier(work: () => void | Promise<void>): void {
    if (this.barrier === null) {
      const started = work();
      if (started instanceof Promise) this.setBarrier(started);
      return;
    }
    this.setBarrier(this.barrier.then(work));
  }

  private setBarrier(work: Promise<void>): void {
    const barrier = work.catch((error: unknown) => this.fatal(error));
    this.barrier = barrier;
    void barrier.then(() => {
      if (this.barrier === barrier) this.barrier = null;
    });
  }

  private read(op: Op, checksum: Uint8Array | null, context: JournalReadContext): void {
    this.journal.read(op).then(
      (prepare) => {
        const matches = checksum === null || checksumEqual(prepare.header.checksum, checksum);
        this.perform(this.replica.onJournalRead(op, matches ? prepare : null, context));
      },
      (error: unknown) => {
        // A record that fails its checksums is reported as missing, for repair from a peer.
        if (!(error instanceof KmbError) || error.code !== errorCodes.storage_corrupt) {
          this.fatal(error);
          return;
        }
        this.logger.warn('Journal record failed its checksums on read', { op });
        this.perform(this.replica.onJournalRead(op, null, context));
      },
    );
  }

  private writeSuperblock(state: { view: View; logView: View; commit: Op }): void {
    // The superblock's commit must be held by this journal (verify checks it); a lower commit
    // only means a restart learns the rest from the cluster, so clamp rather than claim.
    const held = Math.min(state.commit, this.journal.durableOpMax);
    const commit = asOp(Math.max(this.superblock.state.commit, held));
    const writing = this.superblock.write({ ...state, commit });
    this.superblockWriting = writing.catch(() => undefined);
    writing.then(
      () => this.perform(this.replica.onSuperblockDurable()),
      (error: unknown) => this.fatal(error),
    );
  }

  private append(prepare: Prepare): void {
    const { op, checksum, requestCount } = prepare.header;
    const sizeBytes = prepare.headerBytes.length + prepare.body.length;
    this.journal.append(prepare).then(
      () => {
        this.metrics.logEntriesTotal.inc(requestCount);
        this.metrics.logBytesTotal.inc(sizeBytes);
        this.metrics.logSizeBytes.set(this.journal.sizeBytes);
        this.perform(this.replica.onJournalDurable(op, checksum));
      },
      (error: unknown) => {
        // Stopping while the disk is full: those ops were never acknowledged (journal.ts).
        const abandoned = error instanceof KmbError && error.code === errorCodes.storage_full;
        if (!(abandoned && this.shuttingDown)) this.fatal(error);
      },
    );
    this.queries.remember(prepare);
  }

  private reply(
    clientId: ClientId,
    requestNumber: number,
    message: ClientMessage,
    status: 'ok' | 'error',
    code: ErrorCode | null,
  ): void {
    const pending = this.pending.get(clientId);
    let method: RequestMethod = 'append';
    if (pending !== undefined && pending.requestNumber === requestNumber) {
      method = pending.method;
      this.pending.delete(clientId);
      const seconds = (performance.now() - pending.startMs) / 1000;
      if (status === 'ok') this.metrics.writeDurationSeconds.observe(seconds);
    }
    let resultStatus = status;
    if (message.kind === 'reply' && message.reply.result[0] === 0 && method !== 'register') {
      resultStatus = 'error'; // A committed kernel error (result tag 0).
      this.eventLog.committedError(message.reply.result, {
        client_id: clientId,
        op: message.reply.op,
      });
    }
    this.metrics.requestsTotal(method, resultStatus).inc();
    if (code !== null) this.metrics.errorsTotal(code).inc();
    if (code !== null)
      this.eventLog.clientError(code, { client_id: clientId, request: requestNumber });
    const connection = this.clients.get(clientId);
    if (connection === undefined || connection.closed) return;
    this.deps.onReply?.(
      clientId,
      requestNumber,
      message.kind === 'reply' ? message.reply.op : null,
    );
    connection.send(message);
  }

  private onReplicaEvent(event: ReplicaEvent<KernelOutput>): void {
    this.eventLog.onEvent(event);
    this.nodeMetrics.onEvent(event);
    switch (event.kind) {
      case 'committed':
        this.commitTimestampUs = event.timestampUs;
        this.metrics.consensusCommitsTotal.inc(event.requestCount);
        this.metrics.projectionAppliedPosition.set(event.op);
        this.metrics.projectionLag.set(this.replica.op - event.op);
        break;
      case 'status_changed':
        this.updateConsensusGauges();
        break;
      case 'view_change_started':
        this.viewChanges.started(event.oldView, event.view, event.reason);
        break;
      case 'view_change_finished':
        this.viewChanges.finished(event.oldView, event.view, event.primary);
        this.updateConsensusGauges();
        break;
      case 'primary_quorum':
        this.quorumReachable = event.reachable;
        break;
      case 'applied':
      case 'became_primary':
      case 'session_evicted':
      case 'checksum_failure':
      case 'log_truncated':
      case 'log_divergence':
      case 'repair_requested':
      case 'repair_completed':
      case 'clock_offset':
      case 'scrub_progress':
      case 'prepared':
      case 'session_registered':
      case 'message_rejected':
        break;
    }
  }

  private onApplied(output: KernelOutput): void {
    for (const effect of output.effects) {
      if (effect.kind === 'events_appended') {
        this.index.recordAppend(
          effect.streamId,
          effect.firstOffset,
          effect.count,
          effect.op,
          effect.requestIndex,
        );
        this.metrics.tenantLogEntriesTotal(effect.tenantId).inc(effect.count);
      } else if (effect.kind === 'tenant_created') {
        this.metrics.activeTenants.set(activeTenantCount(this.state));
      }
    }
  }

  private updateConsensusGauges(): void {
    this.metrics.consensusView.set(this.replica.view);
    const normal = this.replica.status === 'normal';
    this.metrics.setConsensusLeader(normal ? this.replica.primaryIndex : null);
  }

  private fatal(error: unknown): void {
    this.logger.error('Fatal storage failure: stopping without acknowledging further writes', {
      error: error instanceof Error ? error.message : String(error),
    });
    if (this.deps.onFatal !== undefined) this.deps.onFatal(error);
    else throw error;
  }

  // ----- operator surface -----

  live(): boolean {
    return !this.shuttingDown;
  }

  ready(): { ready: boolean; reason: string } {
    if (this.shuttingDown) return { ready: false, reason: 'shutting_down' };
    if (!this.listening) return { ready: false, reason: 'recovering' };
    if (this.disk.full) return { ready: false, reason: 'disk_full' };
    if (this.replica.status !== 'normal') return { ready: false, reason: this.replica.status };
    if (!this.quorumReachableNow()) return { ready: false, reason: 'quorum_unreachable' };
    if (this.replica.commitMax - this.replica.commitMin > readyCommitLagOpsMax) {
      return { ready: false, reason: 'catching_up' };
    }
    return { ready: true, reason: 'ok' };
  }

  /**
   * A replica message's encoding, reused while the same message object is sent to several
   * peers in a row (a broadcast is one object with one send effect per target), so a prepare's
   * body is encoded once, not once per backup.
   */
  private encodeOnce(message: ReplicaMessage): { tag: number; body: Uint8Array } {
    if (this.lastEncoded?.message !== message) {
      this.lastEncoded = { message, ...encodeReplicaMessage(message) };
    }
    return this.lastEncoded;
  }

  /**
   * Whether this replica can reach a quorum (itself included) right now. The primary knows from
   * its backups' answers (primary_quorum events); any other replica judges by its live links.
   */
  private quorumReachableNow(): boolean {
    if (this.replica.isPrimary) return this.quorumReachable;
    const connectedCount = this.bus?.connectedPeers().length ?? 0;
    return 1 + connectedCount >= this.replica.quorum;
  }

  status(): Record<string, unknown> {
    const normal = this.replica.status === 'normal' && !this.shuttingDown;
    const connected = new Set(this.bus?.connectedPeers() ?? []);
    const leader = normal ? this.replica.primaryIndex : null;
    return {
      node_id: this.config.nodeId,
      status: this.shuttingDown ? 'shutting_down' : this.replica.status,
      view: this.replica.view,
      // Executed (applied) progress: what this replica's state and journal reflect. A replica
      // catching up may know of later commits (commit_known) that it has not applied yet.
      commit_number: this.replica.commitMin,
      commit_known: this.replica.commitMax,
      op_number: this.replica.op,
      is_leader: normal && this.replica.isPrimary,
      leader,
      cluster_size: this.replica.replicaCount,
      healthy_replicas: normal ? 1 + connected.size : 0,
      quorum_reachable: normal && this.quorumReachableNow(),
      cluster_name: this.config.clusterName,
      metrics_address: this.config.metricsAddress,
      commit_timestamp_us: this.commitTimestampUs,
      // A full disk refuses writes and serves reads (disk_space.ts); free bytes null: unknown.
      disk_full: this.disk.full,
      disk_free_bytes: this.disk.freeBytes,
      disk_free_bytes_min: this.disk.freeBytesMin,
      cluster_members: this.config.peers.map((address, nodeId) => {
        const self = nodeId === this.config.nodeId;
        return {
          node_id: nodeId,
          address,
          self,
          connected: self || connected.has(nodeId),
          is_leader: nodeId === leader,
        };
      }),
    };
  }

  /** stateDigest() of the kernel state this replica executed to: what verify's replay checks. */
  stateDigest(): Uint8Array {
    return stateDigest(this.state);
  }

  /**
   * Graceful stop (SIGTERM): refuse new requests, wait for the ones in flight to commit and be
   * answered, sync and close the journal, record the commit number in the superblock.
   */
  async stop(): Promise<void> {
    if (this.shuttingDown) return;
    this.shuttingDown = true;
    this.logger.info('Shutting down: draining in-flight requests', {
      in_flight: this.replica.pendingRequestCount,
    });
    this.clientPort?.close();
    const deadline = Date.now() + this.config.shutdownTimeoutMs;
    while (this.replica.pendingRequestCount > 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    if (this.tickTimer !== null) clearInterval(this.tickTimer);
    this.disk.stop();
    this.nodeMetrics.stop();
    await this.bus?.close();
    while (this.barrier !== null) await this.barrier;
    await this.superblockWriting;
    await this.journal.close();
    if (this.tracing !== null) await this.tracing.shutdown();
    // Record only a commit number whose ops this journal durably holds: a replica still catching
    // up may know of commits beyond its journal, and the superblock must never claim those.
    const commit = Math.min(this.replica.commitMax, this.journal.durableOpMax);
    if (commit > this.superblock.state.commit)
      await this.superblock.write({ commit: asOp(commit) });
    await new Promise((resolve) => setImmediate(resolve));
    this.clientPort?.closeConnections();
    this.logger.info('Stopped', { op: this.replica.op, commit_number: this.replica.commitMax });
  }
}
