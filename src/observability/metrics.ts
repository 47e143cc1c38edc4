// The node's Prometheus instruments, one `Metrics` object per node, in two registries:
//   registry      every `kmb_*` name of the monitoring spec (000), kmb_errors_total,
//                 kmb_consensus_is_leader, the troubleshooting doc's kmb_checksum_failures_total
//                 (002), the runbook's `kimberlite_*` names (003), and the Node.js process
//                 metrics; default label `node_id`.
//   vsr.registry  the `vsr_*` names of the VSR instrumentation spec (001), vsr_metrics.ts;
//                 default label `replica_id`.
// render() is /metrics (both registries, promtool-clean); renderCompat() is /metrics/compat, the
// spec's original names that promtool rejects, from the same cells (compat_metrics.ts).
//
// One set of instruments: where two documents name the same quantity both names read one cell
// (kimberlite_consensus_commits_total is kmb_consensus_commits_total's cell,
// vsr_bytes_written_total kmb_log_bytes_total's, vsr_client_latency_seconds
// kmb_write_duration_seconds', the view-change counters all sum vsr_view_changes_total{reason},
// kmb_checksum_failures_total sums vsr_checksum_failures_total{component}). The node shell
// feeds the cells (node_metrics.ts, HOUSE_RULES §10); this file only defines them.
// Instruments are plain numeric cells (metric_cells.ts): updating one never allocates, and
// label combinations are looked up in prebuilt tables, never built per call.
//
// kmb_consensus_leader encodes "who leads" so that both the spec's description ("current leader
// node ID") and its alert (`sum(kmb_consensus_leader) == 0` means no leader) hold while replica
// indexes start at 0: each replica reports the index of the primary it follows plus one, and 0
// while it knows of no primary (view change, recovery, not yet joined). `max(...) - 1` is the
// leader's node_id. kmb_consensus_is_leader is 1 only on the primary itself.

import { Registry } from 'prom-client';
import { assert } from '../core/assert.js';
import { constants } from '../core/constants.js';
import { errorCodes, type ErrorCode } from '../core/errors.js';
import { ClientPortMetrics } from './client_port_metrics.js';
import { registerNodeCompat, registerVsrCompat } from './compat_metrics.js';
import { createDiskInstruments, type DiskInstruments } from './disk_metrics.js';
import { ProjectionInstruments } from './projection_metrics.js';
import {
  CounterFamily,
  GaugeFamily,
  HistogramFamily,
  SummaryFamily,
  unionBounds,
  type CounterCell,
  type FamilyOptions,
  type GaugeCell,
  type HistogramCell,
  type ReadCell,
  type SummaryCell,
} from './metric_cells.js';
import { createOpsInstruments, type OpsInstruments } from './ops_metrics.js';
import { registerProcessMetrics } from './process_metrics.js';
import {
  secondsBuckets,
  vsrChecksumComponents,
  vsrViewChangeReasons,
  VsrMetrics,
} from './vsr_metrics.js';
import type { VsrViewChangeReason } from './vsr_metrics.js';

export type {
  CounterCell,
  GaugeCell,
  HistogramCell,
  ReadCell,
  SummaryCell,
} from './metric_cells.js';

/** Client request kinds, the `method` label of kmb_requests_total. */
export const requestMethods = [
  'create_tenant',
  'create_stream',
  'append',
  'read',
  'list_tenants',
  'list_streams',
  'register',
  'node_status',
  'view_changes',
] as const;
export type RequestMethod = (typeof requestMethods)[number];

/** How a request ended, the `status` label of kmb_requests_total. */
export const requestStatuses = ['ok', 'error'] as const;
export type RequestStatus = (typeof requestStatuses)[number];

/**
 * Upper bounds (seconds) shared by the write and query latency histograms: roughly three per
 * decade from 50 µs (an in-memory read) to 10 s (a write stuck behind a view change).
 */
export const durationBucketsSeconds: readonly number[] = [
  0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
  5, 10,
];

/** Observations kimberlite_consensus_commit_latency_seconds computes its quantiles over. */
export const commitLatencyWindowCountMax = 4096;

/** The `status` label of kimberlite_cluster_replicas. */
export const clusterReplicaStatuses = ['healthy', 'unreachable'] as const;
export type ClusterReplicaStatus = (typeof clusterReplicaStatuses)[number];

export interface MetricsOptions {
  /** This replica's index; becomes the `node_id` (and `replica_id`) label on every series. */
  nodeId: number;
  /** Include the `process_*` / `nodejs_*` metrics (default true). */
  processMetrics?: boolean;
}

type RequestCells = Readonly<Record<RequestMethod, Readonly<Record<RequestStatus, CounterCell>>>>;

export class Metrics {
  readonly nodeId: number;
  /** kmb_*, kimberlite_* and process metrics (label node_id). */
  readonly registry: Registry;
  /** The compat names of the kimberlite_* entries (label node_id). */
  readonly compatRegistry: Registry;
  /** The vsr_* instruments and their registry (label replica_id). */
  readonly vsr: VsrMetrics;
  /** The compat names of the vsr_* entries (label replica_id). */
  readonly vsrCompatRegistry: Registry;
  readonly contentType: string;

  /** kmb_log_entries_total: entries appended to the journal. */
  readonly logEntriesTotal: CounterCell;
  /** kmb_log_bytes_total (= vsr_bytes_written_total): bytes appended to the journal. */
  readonly logBytesTotal: CounterCell;
  /** kmb_log_size_bytes (= vsr_log_size_bytes): the bytes of the journal's records. */
  readonly logSizeBytes: GaugeCell;
  /** kmb_log_free_space_bytes: zeros laid down after the last record, read at scrape time. */
  readonly logFreeSpaceBytes: ReadCell;
  /** kmb_write_duration_seconds (= vsr_client_latency_seconds): a write, receipt to reply. */
  readonly writeDurationSeconds: HistogramCell;
  /** kmb_query_duration_seconds: a read, from receipt to reply. */
  readonly queryDurationSeconds: HistogramCell;
  /** kmb_requests_in_flight (= vsr_pending_requests): requests not yet answered. */
  readonly requestsInFlight: GaugeCell;
  /** kmb_active_tenants: tenants that exist and are not sealed. */
  readonly activeTenants: GaugeCell;
  /** kmb_consensus_commits_total (= kimberlite_consensus_commits_total): requests committed. */
  readonly consensusCommitsTotal: CounterCell;
  /** kmb_consensus_view: the view this replica is in. */
  readonly consensusView: GaugeCell;
  /** kmb_projection_applied_position, kmb_projection_lag: the slowest view and each view. */
  readonly projection: ProjectionInstruments;
  /** kimberlite_consensus_commit_latency_seconds: prepare to commit, on the leader. */
  readonly commitLatencySummary: SummaryCell;
  /** kimberlite_assertion_failures_total: crash records of assertion failures in the data dir. */
  readonly assertionFailuresTotal: CounterCell;
  /** kimberlite_storage_disk_usage_percent: used share of the data directory's filesystem. */
  readonly storageDiskUsagePercent: GaugeCell;
  /** kimberlite_cluster_replicas{status}: replicas this node sees healthy or unreachable. */
  readonly clusterReplicas: Readonly<Record<ClusterReplicaStatus, ReadCell>>;
  /** kmb_storage_disk_*: a full disk (disk_metrics.ts). */
  readonly disk: DiskInstruments;
  /** kmb_client_*: the client port's connections, frame buffer and limits. */
  readonly clientPort: ClientPortMetrics;
  /** The ops HTTP port's own instruments (kmb_ops_*), ops_metrics.ts. */
  readonly ops: OpsInstruments;

  private readonly consensusLeader: GaugeCell;
  private readonly consensusIsLeader: GaugeCell;
  private readonly requestCells: RequestCells;
  private readonly errorCells: ReadonlyMap<ErrorCode, CounterCell>;
  private readonly tenantFamily: CounterFamily;
  private readonly tenantCells = new Map<number, CounterCell>();
  private readonly lagFamily: GaugeFamily;
  private readonly lagCells = new Map<number, ReadCell>();

  // A flat table of instrument definitions, longer than 70 lines for the same reason as
  // VsrMetrics' constructor: one definition after another reads like docs/metrics.md.
  constructor(options: MetricsOptions) {
    assert(Number.isSafeInteger(options.nodeId) && options.nodeId >= 0, 'node id must be >= 0');
    this.nodeId = options.nodeId;
    this.registry = new Registry();
    this.registry.setDefaultLabels({ node_id: String(options.nodeId) });
    this.compatRegistry = new Registry();
    this.compatRegistry.setDefaultLabels({ node_id: String(options.nodeId) });
    this.contentType = this.registry.contentType;
    const counter = (name: string, help: string): CounterCell =>
      new CounterFamily(this.family(name, help)).cell();
    const gauge = (name: string, help: string): GaugeCell =>
      new GaugeFamily(this.family(name, help)).cell();

    this.logEntriesTotal = counter('kmb_log_entries_total', 'Log entries written.');
    this.logBytesTotal = counter('kmb_log_bytes_total', 'Log bytes written.');
    this.logSizeBytes = gauge('kmb_log_size_bytes', 'Current size of the log in bytes.');
    this.logFreeSpaceBytes = new GaugeFamily(
      this.family(
        'kmb_log_free_space_bytes',
        'Zero bytes the journal laid down after its last record, for records to come.',
      ),
    ).reader();
    this.writeDurationSeconds = new HistogramFamily({
      ...this.family('kmb_write_duration_seconds', 'Write latency, from receipt to reply.'),
      upperBounds: durationBucketsSeconds,
    }).cell({}, unionBounds(durationBucketsSeconds, secondsBuckets('client')));
    this.queryDurationSeconds = this.histogram('kmb_query_duration_seconds', 'Query latency.');
    this.requestCells = this.buildRequestCells();
    this.requestsInFlight = gauge('kmb_requests_in_flight', 'Requests being processed.');
    this.activeTenants = gauge('kmb_active_tenants', 'Tenants that exist and are not sealed.');
    this.tenantFamily = new CounterFamily({
      ...this.family('kmb_tenant_log_entries_total', 'Log entries written, per tenant.'),
      labelNames: ['tenant_id'],
    });
    this.vsr = new VsrMetrics({
      replicaId: options.nodeId,
      clientLatency: this.writeDurationSeconds,
      bytesWritten: this.logBytesTotal,
      logSizeBytes: this.logSizeBytes,
      pendingRequests: this.requestsInFlight,
    });
    this.consensusCommitsTotal = counter('kmb_consensus_commits_total', 'Requests committed.');
    this.consensusView = gauge('kmb_consensus_view', 'Current consensus view number.');
    this.consensusLeader = gauge(
      'kmb_consensus_leader',
      'Node id of the current leader plus one, as this node sees it; 0 when it knows none.',
    );
    this.consensusIsLeader = gauge('kmb_consensus_is_leader', '1 if this node is the leader.');
    this.projection = new ProjectionInstruments(this.registry);
    this.errorCells = this.buildErrorCells();
    this.disk = createDiskInstruments(this.registry);
    this.clientPort = new ClientPortMetrics(this.registry);
    this.ops = createOpsInstruments(this.registry, (code) => this.errorsTotal(code));
    this.buildSums();
    new CounterFamily(
      this.family('kimberlite_consensus_commits_total', 'Requests committed (kmb_ alias).'),
    ).adopt(this.consensusCommitsTotal);
    this.commitLatencySummary = new SummaryFamily(
      this.family(
        'kimberlite_consensus_commit_latency_seconds',
        `On the leader: prepare to commit (quorum) per op, over the last ` +
          `${commitLatencyWindowCountMax} ops.`,
      ),
      commitLatencyWindowCountMax,
    ).cell();
    this.lagFamily = new GaugeFamily({
      ...this.family(
        'kimberlite_replication_lag_seconds',
        'On the leader, per backup: age of the oldest op this view the backup has not ' +
          'acknowledged (0 when caught up). NaN on other replicas.',
      ),
      labelNames: ['replica_id'],
    });
    const replicas = new GaugeFamily({
      ...this.family(
        'kimberlite_cluster_replicas',
        'Replicas as this node sees them: healthy (itself when normal, and peers heard ' +
          'within an election timeout) or unreachable.',
      ),
      labelNames: ['status'],
    });
    this.clusterReplicas = {
      healthy: replicas.reader({ status: 'healthy' }),
      unreachable: replicas.reader({ status: 'unreachable' }),
    };
    this.assertionFailuresTotal = counter(
      'kimberlite_assertion_failures_total',
      'Assertion failures that stopped this node, counted from the crash records in its data ' +
        'directory at start.',
    );
    this.storageDiskUsagePercent = gauge(
      'kimberlite_storage_disk_usage_percent',
      'Used share of the filesystem holding the data directory (sampled every few seconds).',
    );
    if (options.processMetrics ?? true) {
      registerProcessMetrics(this.registry);
    }
    this.vsrCompatRegistry = new Registry();
    this.vsrCompatRegistry.setDefaultLabels({ replica_id: String(options.nodeId) });
    registerVsrCompat(this.vsrCompatRegistry, this.vsr);
    registerNodeCompat(this.compatRegistry, this);
  }

  /** The kmb_requests_total cell for one method and outcome; prebuilt, so free to call. */
  requestsTotal(method: RequestMethod, status: RequestStatus): CounterCell {
    return this.requestCells[method][status];
  }

  /** The kmb_errors_total cell for one stable error code; prebuilt, so free to call. */
  errorsTotal(code: ErrorCode): CounterCell {
    const cell = this.errorCells.get(code);
    assert(cell !== undefined, `unknown error code ${code}`);
    return cell;
  }

  /** The kmb_tenant_log_entries_total cell for one tenant, created on first use. */
  tenantLogEntriesTotal(tenantId: number): CounterCell {
    const cached = this.tenantCells.get(tenantId);
    if (cached !== undefined) return cached;
    assert(Number.isSafeInteger(tenantId) && tenantId >= 0, 'tenant id must be >= 0');
    assert(this.tenantCells.size < constants.tenantCountMax, 'more tenants than tenantCountMax');
    const cell = this.tenantFamily.cell({ tenant_id: String(tenantId) });
    this.tenantCells.set(tenantId, cell);
    return cell;
  }

  /** The view-change counter for one reason (every view-change name reads these). */
  viewChangesTotal(reason: VsrViewChangeReason): CounterCell {
    return this.vsr.viewChanges[reason];
  }

  /** The kimberlite_replication_lag_seconds series of one backup, created on first use. */
  replicationLagSeconds(replicaId: number): ReadCell {
    const cached = this.lagCells.get(replicaId);
    if (cached !== undefined) return cached;
    assert(Number.isSafeInteger(replicaId) && replicaId >= 0, 'replica id must be >= 0');
    assert(this.lagCells.size < constants.replicaCountMax, 'more replicas than replicaCountMax');
    const cell = this.lagFamily.reader({ replica_id: String(replicaId) });
    this.lagCells.set(replicaId, cell);
    return cell;
  }

  /** Every replication-lag series created so far (for the compat exposition). */
  replicationLagSeries(): ReadonlyMap<number, ReadCell> {
    return this.lagCells;
  }

  /**
   * Records who leads, as this node sees it: the leader's replica index, or null while it
   * knows of none. Sets kmb_consensus_leader (index + 1, or 0) and kmb_consensus_is_leader.
   */
  setConsensusLeader(leader: number | null): void {
    if (leader === null) {
      this.consensusLeader.set(0);
      this.consensusIsLeader.set(0);
      return;
    }
    assert(Number.isSafeInteger(leader) && leader >= 0, 'leader must be a replica index');
    this.consensusLeader.set(leader + 1);
    this.consensusIsLeader.set(leader === this.nodeId ? 1 : 0);
  }

  /** Every registry /metrics renders, in order. */
  get registries(): readonly Registry[] {
    return [this.registry, this.vsr.registry];
  }

  /** Every registry /metrics/compat renders, in order. */
  get compatRegistries(): readonly Registry[] {
    return [this.compatRegistry, this.vsrCompatRegistry];
  }

  /** The Prometheus text exposition of /metrics (promtool-clean). */
  async render(): Promise<string> {
    return renderAll(this.registries);
  }

  /** The Prometheus text exposition of /metrics/compat: the spec's names promtool rejects. */
  async renderCompat(): Promise<string> {
    return renderAll(this.compatRegistries);
  }

  private family(name: string, help: string): FamilyOptions {
    return { registry: this.registry, name, help };
  }

  private histogram(name: string, help: string): HistogramCell {
    const upperBounds = durationBucketsSeconds;
    return new HistogramFamily({ ...this.family(name, help), upperBounds }).cell();
  }

  /** Names that sum a labelled vsr_* counter: one instrument, no separate count. */
  private buildSums(): void {
    const viewChanges = (): number =>
      vsrViewChangeReasons.reduce((sum, reason) => sum + this.vsr.viewChanges[reason].value, 0);
    for (const name of [
      'kmb_consensus_view_changes_total',
      'kimberlite_consensus_view_changes_total',
    ]) {
      new CounterFamily(this.family(name, 'View changes (all reasons).'))
        .reader()
        .bind(viewChanges);
    }
    new CounterFamily(
      this.family('kmb_checksum_failures_total', 'Checksum failures (journal and superblock).'),
    )
      .reader()
      .bind(() =>
        vsrChecksumComponents.reduce((sum, c) => sum + this.vsr.checksumFailures[c].value, 0),
      );
  }

  private buildRequestCells(): RequestCells {
    const family = new CounterFamily({
      ...this.family('kmb_requests_total', 'Client requests by method and status.'),
      labelNames: ['method', 'status'],
    });
    const byMethod = {} as Record<RequestMethod, Record<RequestStatus, CounterCell>>;
    for (const method of requestMethods) {
      byMethod[method] = {
        ok: family.cell({ method, status: 'ok' }),
        error: family.cell({ method, status: 'error' }),
      };
    }
    return byMethod;
  }

  private buildErrorCells(): ReadonlyMap<ErrorCode, CounterCell> {
    const family = new CounterFamily({
      ...this.family('kmb_errors_total', 'Errors answered or logged, by stable error code.'),
      labelNames: ['code'],
    });
    const cells = new Map<ErrorCode, CounterCell>();
    for (const code of Object.values(errorCodes)) {
      cells.set(code, family.cell({ code }));
    }
    return cells;
  }
}

async function renderAll(registries: readonly Registry[]): Promise<string> {
  const texts = await Promise.all(registries.map((registry) => registry.metrics()));
  return texts.join('');
}
