// The node shell: one replica process, as a small event loop. It feeds the pure replica its
// inputs — client requests, peer messages, ticks, and the completions of its storage work — and
// the one effect driver (vsr/effect_driver.ts) hands every effect to a narrow sink:
//
//   storage   storage_sink.ts    journal appends, truncations (a barrier), reads, superblock
//   peers     peer_link.ts       the replica bus to the other replicas
//   clients   client_sessions.ts admission of requests, replies and rejections on connections
//   views     node_views.ts      derived views fed each executed op (the stream index first)
//   reads     read_gate.ts       when linearizable reads may be answered
//   observer  node_observer.ts   metrics, logs, traces, view-change history
//
// The simulator (testing/cluster.ts) and the scenario harness drive the replica through the same
// driver with simulated sinks. Around the loop: start-up opens storage (node_open.ts) and replays
// every durable prepare through the replica (rebuilding kernel state, client sessions and the
// views), then listens; the client port (net/client_port.ts) tells replicas from clients, the
// handshake (net/client_handshake.ts) admits clients, queries go to the query front. A client's
// write is answered only after the replica commits it, which needs its journal append — write
// and fdatasync — to have completed. A single node is a cluster of one.

import { assert } from '../core/assert.js';
import { asOp } from '../core/types.js';
import { activeTenantCount, createState, stateDigest } from '../kernel/kernel.js';
import type { KernelOutput, State } from '../kernel/kernel.js';
import { ClientHandshake } from '../net/client_handshake.js';
import { ClientPort } from '../net/client_port.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { Journal } from '../storage/journal.js';
import type { Superblock } from '../storage/superblock.js';
import type { ViewHost } from '../views/view_host.js';
import { EffectDriver } from '../vsr/effect_driver.js';
import { ClientSessions } from './client_sessions.js';
import {
  bindClientPortGauges,
  clientPortEvents,
  clientPortLimitsOf,
} from './client_port_events.js';
import { parseHostPort } from './config.js';
import type { DiskSpace } from './disk_space.js';
import type { NodeConfig, NodeDependencies } from './node_deps.js';
import { NodeEventLog } from './node_event_log.js';
import { NodeMetrics } from './node_metrics.js';
import { NodeObserver } from './node_observer.js';
import { createReplica } from './node_replica.js';
import type { NodeReplica } from './node_replica.js';
import { openNodeStorage } from './node_open.js';
import type { OpenedStorage } from './node_open.js';
import { nodeReadiness, nodeStatus } from './node_status.js';
import type { NodeStatusSource } from './node_status.js';
import { createNodeTracing } from './node_tracing.js';
import type { NodeTracing } from './node_tracing.js';
import { NodeViews } from './node_views.js';
import { PeerLink } from './peer_link.js';
import { QueryFront } from './query_front.js';
import { QueryService } from './query_service.js';
import { ReadGate } from './read_gate.js';
import { SessionAdmission, sessionAdmissionLimitsDefault } from './session_admission.js';
import { JournalSink } from './storage_sink.js';
import { writeTimeline } from './timeline.js';
import { ViewChangeHistory } from './view_change_history.js';
import type { ViewChangeRecord } from './view_change_history.js';

export type { NodeConfig, NodeDependencies } from './node_deps.js';

export class KimberliteNode {
  readonly config: NodeConfig;
  readonly metrics: Metrics;
  private readonly logger: Logger;
  private readonly state: State = createState();
  private readonly replica: NodeReplica;
  private readonly driver: EffectDriver<KernelOutput>;
  private readonly journal: Journal;
  private readonly superblock: Superblock;
  private readonly disk: DiskSpace;
  private readonly nodeMetrics: NodeMetrics;
  private readonly eventLog: NodeEventLog;
  /** Null when tracing is off: every tracing call is behind this one check. */
  private readonly tracing: NodeTracing | null;
  private readonly viewChanges = new ViewChangeHistory();
  private readonly gate = new ReadGate();
  private readonly storage: JournalSink;
  private readonly peers: PeerLink;
  private readonly sessions: ClientSessions;
  private readonly views: NodeViews;
  private readonly observer: NodeObserver;
  private readonly queries: QueryFront;
  private readonly statusSource: NodeStatusSource;
  private clientPort: ClientPort | null = null;
  private tickTimer: NodeJS.Timeout | null = null;
  private shuttingDown = false;
  private listening = false;
  private boundAddress = '';

  private constructor(
    private readonly deps: NodeDependencies,
    private readonly opened: OpenedStorage,
  ) {
    const { config, metrics, logger } = deps;
    this.config = config;
    this.metrics = metrics;
    this.logger = logger;
    this.journal = opened.journal;
    this.superblock = opened.superblock;
    this.disk = opened.disk;
    const netLogger = logger.child({}, 'kimberlite_net');
    this.replica = createReplica(deps, opened.superblock, this.state);
    const replica = this.replica;
    this.nodeMetrics = new NodeMetrics({
      metrics,
      nodeId: config.nodeId,
      replicaCount: config.peers.length,
      dataDir: config.dataDir,
    });
    this.nodeMetrics.onStorageOpened(opened.superblock.report, opened.journal.recovery.truncated);
    this.nodeMetrics.bind(replica);
    this.eventLog = new NodeEventLog(logger, () => replica);
    this.tracing = createNodeTracing({
      config: config.tracing,
      tracing: deps.tracing,
      nodeId: config.nodeId,
      logger,
      view: () => replica.view,
    });
    this.views = new NodeViews({
      state: this.state,
      metrics,
      commitKnown: () => replica.commitMax,
    });
    const queryService = new QueryService(this.state, this.views.streamIndex, this.journal);
    this.storage = new JournalSink({
      journal: this.journal,
      superblock: this.superblock,
      metrics,
      logger,
      fatal: (error) => this.fatal(error),
      stopping: () => this.shuttingDown,
      onAppend: (prepare) => queryService.remember(prepare),
    });
    this.peers = new PeerLink({
      clusterName: config.clusterName,
      cluster: replica.cluster,
      nodeId: config.nodeId,
      peers: config.peers,
      metrics,
      nodeMetrics: this.nodeMetrics,
      logger: netLogger,
      disk: this.disk,
      journalPendingCount: () => this.journal.pendingCount,
      deliver: (message) => this.driver.message(message),
    });
    this.sessions = new ClientSessions({
      metrics,
      logger: netLogger,
      eventLog: this.eventLog,
      tracing: this.tracing,
      disk: this.disk,
      sessionAdmission: new SessionAdmission({
        limits: config.sessionAdmission ?? sessionAdmissionLimitsDefault,
        logger: netLogger,
        refused: metrics.clientPort.sessionsRefused,
      }),
      isPrimary: () => replica.isPrimary,
      stopping: () => this.shuttingDown,
      submit: (request) => this.driver.request({ ...request }),
      onReply: deps.onReply,
    });
    this.observer = new NodeObserver({
      metrics,
      nodeMetrics: this.nodeMetrics,
      eventLog: this.eventLog,
      tracing: this.tracing,
      viewChanges: this.viewChanges,
      replica,
      dropEvents: deps.dropTelemetryEvents === true,
    });
    this.driver = new EffectDriver<KernelOutput>(replica, {
      storage: this.storage,
      peers: this.peers,
      clients: this.sessions,
      views: this.views,
      reads: this.gate,
      observer: this.observer,
    });
    this.storage.attach(this.driver);
    this.statusSource = {
      nodeId: config.nodeId,
      clusterName: config.clusterName,
      peers: config.peers,
      metricsAddress: config.metricsAddress,
      replica,
      gate: this.gate,
      disk: this.disk,
      connectedPeers: () => this.peers.connectedPeers(),
      stopping: () => this.shuttingDown,
      listening: () => this.listening,
      commitTimestampUs: () => this.observer.commitTimestampUs,
      views: () => this.views.status(),
    };
    this.queries = new QueryFront({
      metrics,
      eventLog: this.eventLog,
      tracing: this.tracing,
      gate: this.gate,
      replica,
      queries: queryService,
      nodeStatus: () => this.status(),
      viewChanges: () => this.viewChangeHistory(),
    });
  }

  /** Opens storage, replays the journal and starts serving clients. */
  static async start(deps: NodeDependencies): Promise<KimberliteNode> {
    const { config, logger } = deps;
    assert(config.nodeId < config.peers.length, 'node id indexes the peer list');
    const startedNs = process.hrtime.bigint();
    const opened = await openNodeStorage(deps);
    const node = new KimberliteNode(deps, opened);
    await node.replay();
    const replaySeconds = Number(process.hrtime.bigint() - startedNs) / 1e9;
    const journal = opened.journal;
    logger.child({}, 'kimberlite_storage').info('Recovered journal', {
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

  private async replay(): Promise<void> {
    for await (const prepare of this.journal.entries(1)) this.driver.recoveredPrepare(prepare);
    // Journal.open verified every record and cut a torn (never acknowledged) tail — the replay
    // then held every record this replica ever acknowledged — or, in a cluster, cut at a corrupt
    // record or found fewer ops than the superblock's commit (judgeJournal): then the journal is
    // not intact and the replica must not vote until repaired.
    const { journalIntact, formatted } = this.opened;
    this.driver.finishRecovery({ journalIntact, formatted });
    this.nodeMetrics.replayFinished();
    this.metrics.logSizeBytes.set(this.journal.sizeBytes);
    this.metrics.activeTenants.set(activeTenantCount(this.state));
    this.observer.updateConsensusGauges();
    if (this.replica.status === 'normal' && this.replica.isPrimary) {
      this.eventLog.becameLeader(this.replica.view, this.replica.op, this.replica.commitMax);
    }
  }

  private async listen(): Promise<void> {
    const { host, port } = parseHostPort(this.config.address);
    const replica = this.replica;
    const handshake = new ClientHandshake(this.config.clusterName, {
      helloOk: () => ({
        nodeId: this.config.nodeId,
        replicaCount: replica.replicaCount,
        view: replica.view,
        leader: replica.primaryIndex,
      }),
      onRequest: (connection, request) => this.sessions.onRequest(connection, request),
      onQuery: (connection, query) => void this.queries.onQuery(connection, query),
    });
    // The listener, first-frame demux, timeouts and limits live in net/client_port.ts.
    const limits = clientPortLimitsOf(this.config.connectionCountMax, this.config.clientPort);
    const netLogger = this.logger.child({}, 'kimberlite_net');
    const clientPort = await ClientPort.listen({
      host,
      port,
      limits,
      handlers: {
        onClientMessage: (c, m) => handshake.onMessage(c, m),
        onConnectionClosed: (c) => this.sessions.onConnectionClosed(c),
        onReplicaHello: (socket, hello, decoder) =>
          this.peers.acceptInbound(socket, hello, decoder),
        onClientSocket: (socket) => this.nodeMetrics.trackSocket(socket),
      },
      events: clientPortEvents(this.metrics, netLogger),
    });
    bindClientPortGauges(this.metrics, clientPort, limits);
    this.boundAddress = `${host.includes(':') ? `[${host}]` : host}:${clientPort.boundPort}`;
    this.clientPort = clientPort;
    this.peers.start();
    this.listening = true;
    this.tickTimer = setInterval(() => this.driver.tick(), this.config.tickMs);
  }

  /** The client protocol address actually bound (port 0 resolved). */
  get address(): string {
    return this.boundAddress;
  }

  /** The derived views (their positions, digests and queries): views/view_host.ts. */
  get viewHost(): ViewHost {
    return this.views.host;
  }

  /** The view changes this node saw, oldest first (bounded). */
  viewChangeHistory(): ViewChangeRecord[] {
    return this.viewChanges.list();
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
    return nodeReadiness(this.statusSource);
  }

  status(): Record<string, unknown> {
    return nodeStatus(this.statusSource);
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
    await this.peers.close();
    await this.storage.drain();
    await this.journal.close();
    if (this.tracing !== null) await this.tracing.shutdown();
    await writeTimeline(this.config.nodeId);
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
