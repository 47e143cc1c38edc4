// The node's Prometheus instruments: every `kmb_*` name of the monitoring spec, plus
// kmb_errors_total and kmb_consensus_is_leader, plus the Node.js process metrics, all in one
// registry owned by one `Metrics` object per node.
//
// The node shell feeds these from the events the core emits (HOUSE_RULES §10); this file only
// defines them. Every series carries the registry-wide label `node_id` (the replica index).
// Instruments are plain numeric cells (metric_cells.ts): updating one never allocates, and label
// combinations are looked up in prebuilt tables, never built per call.
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
import {
  CounterFamily,
  GaugeFamily,
  HistogramFamily,
  type CounterCell,
  type FamilyOptions,
  type GaugeCell,
  type HistogramCell,
} from './metric_cells.js';
import { registerProcessMetrics } from './process_metrics.js';

export type { CounterCell, GaugeCell, HistogramCell } from './metric_cells.js';

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

export interface MetricsOptions {
  /** This replica's index; becomes the `node_id` label on every series. */
  nodeId: number;
  /** Include the `process_*` / `nodejs_*` metrics (default true). */
  processMetrics?: boolean;
}

type RequestCells = Readonly<Record<RequestMethod, Readonly<Record<RequestStatus, CounterCell>>>>;

export class Metrics {
  readonly nodeId: number;
  readonly registry: Registry;
  readonly contentType: string;

  /** kmb_log_entries_total: entries appended to the journal. */
  readonly logEntriesTotal: CounterCell;
  /** kmb_log_bytes_total: bytes appended to the journal. */
  readonly logBytesTotal: CounterCell;
  /** kmb_log_size_bytes: the journal's current size on disk. */
  readonly logSizeBytes: GaugeCell;
  /** kmb_write_duration_seconds: a write, from receipt to reply. */
  readonly writeDurationSeconds: HistogramCell;
  /** kmb_query_duration_seconds: a read, from receipt to reply. */
  readonly queryDurationSeconds: HistogramCell;
  /** kmb_requests_in_flight: client requests received and not yet answered. */
  readonly requestsInFlight: GaugeCell;
  /** kmb_active_tenants: tenants that exist and are not sealed. */
  readonly activeTenants: GaugeCell;
  /** kmb_consensus_commits_total: ops committed. */
  readonly consensusCommitsTotal: CounterCell;
  /** kmb_consensus_view: the view this replica is in. */
  readonly consensusView: GaugeCell;
  /** kmb_consensus_view_changes_total: view changes this replica took part in. */
  readonly consensusViewChangesTotal: CounterCell;
  /** kmb_projection_applied_position: the last op applied to the views. */
  readonly projectionAppliedPosition: GaugeCell;
  /** kmb_projection_lag: ops committed but not yet applied to the views. */
  readonly projectionLag: GaugeCell;

  private readonly consensusLeader: GaugeCell;
  private readonly consensusIsLeader: GaugeCell;
  private readonly requestCells: RequestCells;
  private readonly errorCells: ReadonlyMap<ErrorCode, CounterCell>;
  private readonly tenantFamily: CounterFamily;
  private readonly tenantCells = new Map<number, CounterCell>();

  constructor(options: MetricsOptions) {
    assert(Number.isSafeInteger(options.nodeId) && options.nodeId >= 0, 'node id must be >= 0');
    this.nodeId = options.nodeId;
    this.registry = new Registry();
    this.registry.setDefaultLabels({ node_id: String(options.nodeId) });
    this.contentType = this.registry.contentType;
    const counter = (name: string, help: string): CounterCell =>
      new CounterFamily(this.family(name, help)).cell();
    const gauge = (name: string, help: string): GaugeCell =>
      new GaugeFamily(this.family(name, help)).cell();

    this.logEntriesTotal = counter('kmb_log_entries_total', 'Log entries written.');
    this.logBytesTotal = counter('kmb_log_bytes_total', 'Log bytes written.');
    this.logSizeBytes = gauge('kmb_log_size_bytes', 'Current size of the log in bytes.');
    this.writeDurationSeconds = this.histogram('kmb_write_duration_seconds', 'Write latency.');
    this.queryDurationSeconds = this.histogram('kmb_query_duration_seconds', 'Query latency.');
    this.requestCells = this.buildRequestCells();
    this.requestsInFlight = gauge('kmb_requests_in_flight', 'Requests being processed.');
    this.activeTenants = gauge('kmb_active_tenants', 'Tenants that exist and are not sealed.');
    this.tenantFamily = new CounterFamily({
      ...this.family('kmb_tenant_log_entries_total', 'Log entries written, per tenant.'),
      labelNames: ['tenant_id'],
    });
    this.consensusCommitsTotal = counter('kmb_consensus_commits_total', 'Ops committed.');
    this.consensusView = gauge('kmb_consensus_view', 'Current consensus view number.');
    this.consensusLeader = gauge(
      'kmb_consensus_leader',
      'Node id of the current leader plus one, as this node sees it; 0 when it knows none.',
    );
    this.consensusIsLeader = gauge('kmb_consensus_is_leader', '1 if this node is the leader.');
    this.consensusViewChangesTotal = counter('kmb_consensus_view_changes_total', 'View changes.');
    this.projectionAppliedPosition = gauge(
      'kmb_projection_applied_position',
      'Last log position applied to the projections.',
    );
    this.projectionLag = gauge(
      'kmb_projection_lag',
      'Log positions not yet applied (head - applied).',
    );
    this.errorCells = this.buildErrorCells();
    if (options.processMetrics ?? true) {
      registerProcessMetrics(this.registry);
    }
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

  /** The Prometheus text exposition of every metric in the registry. */
  async render(): Promise<string> {
    return this.registry.metrics();
  }

  private family(name: string, help: string): FamilyOptions {
    return { registry: this.registry, name, help };
  }

  private histogram(name: string, help: string): HistogramCell {
    const upperBounds = durationBucketsSeconds;
    return new HistogramFamily({ ...this.family(name, help), upperBounds }).cell();
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
