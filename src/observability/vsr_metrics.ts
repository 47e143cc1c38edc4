// The `vsr_*` instruments of the VSR instrumentation spec (001), in their own registry whose
// default label is `replica_id`, so vsr series never carry node_id (names.md). This file only
// defines them; the node shell feeds them (src/node/node_metrics.ts) from replica events,
// effects and replica state, and the resource sampler (resource_metrics.ts) from the OS.
//
// Names follow the naming decision: a spec name that promtool rejects is served here under a
// lint-clean name (vsr_prepare_latency_ms → vsr_prepare_latency_seconds, vsr_log_entry_count →
// vsr_log_entries, ...), and /metrics/compat (compat_metrics.ts) serves the original name from
// the same cell. Latency histograms observe seconds; their bounds are the spec's ms buckets
// divided by 1000, so both expositions report exact counts at the spec's bounds.
//
// Honest values: this build has no state transfer, no reconfiguration and no standbys, so
// vsr_replica_status is never 3, the state-transfer histogram stays empty, vsr_reconfig_state is
// 0 (stable) and every standby gauge and counter is 0. Their HELP says so.
//
// Label values come from closed lists (below), so every series exists from the first scrape.

import { readFileSync } from 'node:fs';
import { Registry } from 'prom-client';
import { assert } from '../core/assert.js';
import {
  CounterFamily,
  GaugeFamily,
  HistogramFamily,
  type CounterCell,
  type FamilyOptions,
  type GaugeCell,
  type HistogramCell,
  type ReadCell,
} from './metric_cells.js';

/** The spec's latency buckets, in milliseconds. */
export const vsrLatencyBucketsMs = {
  prepare: [0.1, 0.5, 1, 2, 5, 10, 25, 50, 100],
  commit: [0.1, 0.5, 1, 2, 5, 10, 25, 50, 100],
  client: [1, 5, 10, 25, 50, 100, 250, 500, 1000],
  viewChange: [10, 50, 100, 250, 500, 1000, 5000],
  recovery: [100, 500, 1000, 5000, 10000, 30000],
  stateTransfer: [1000, 5000, 10000, 30000, 60000],
  repair: [1, 5, 10, 25, 50, 100],
} as const satisfies Record<string, readonly number[]>;

export type VsrLatency = keyof typeof vsrLatencyBucketsMs;

/** The same buckets in seconds (ms / 1000), the unit the cells observe in. */
export function secondsBuckets(latency: VsrLatency): number[] {
  return vsrLatencyBucketsMs[latency].map((ms) => ms / 1000);
}

/** Replica message kinds (vsr/message.ts), the `message_type` label; node_metrics checks it. */
export const vsrMessageTypes = [
  'prepare',
  'prepare_ok',
  'commit',
  'ping',
  'pong',
  'start_view_change',
  'do_view_change',
  'start_view',
  'request_start_view',
  'request_prepare',
  'request_prepares',
  'repair_prepare',
  'nack_prepare',
] as const;
export type VsrMessageType = (typeof vsrMessageTypes)[number];

/** Why a view change started (vsr/message.ts ViewChangeReason), the `reason` label. */
export const vsrViewChangeReasons = [
  'primary_timeout',
  'view_change_timeout',
  'start_view_change',
  'do_view_change',
  'later_view',
] as const;
export type VsrViewChangeReason = (typeof vsrViewChangeReasons)[number];

/** Why a message from a peer was refused, the `reason` of vsr_byzantine_rejections_total. */
export const vsrByzantineReasons = [
  /** The bytes did not decode as a replica message. */
  'malformed',
  /** The message names another sender than the link it came on. */
  'sender_mismatch',
  /** The replica refused its sender index (not another replica of this cluster). */
  'invalid_header',
  /** A view beyond what a replica may hold (it would leave no room to change views). */
  'view_out_of_range',
  /** An op or commit number beyond what a replica may hold. */
  'op_out_of_range',
  /** Another field that could not be encoded again (nonce, time, checksum length, suffix). */
  'field_invalid',
  /** A later view asked for while this replica's view is healthy (sticky views). */
  'view_change_refused',
  /** A commit number claimed for ops this view's primary does not hold (the claim is dropped). */
  'commit_unreachable',
  /** A second replica hello for a replica whose link is live (the newcomer is refused). */
  'link_taken',
  /** A replica hello claiming this replica's own index. */
  'self_index',
  /** A prepare it carried failed its checksums. */
  'bad_checksum',
  /** A prepare did not continue the hash chain. */
  'chain_mismatch',
  /** A view's log contradicted committed ops. */
  'log_divergence',
  /** The link's handshake was refused (another cluster, bad hello, wrong direction). */
  'handshake_rejected',
] as const;
export type VsrByzantineReason = (typeof vsrByzantineReasons)[number];

export const vsrChecksumComponents = ['log', 'superblock'] as const;
export type VsrChecksumComponent = (typeof vsrChecksumComponents)[number];

/** vsr_replica_status values (the spec's encoding; 3 = state transfer never happens here). */
export const vsrReplicaStatus = { normal: 0, view_change: 1, recovering: 2 } as const;

type ByLabel<K extends string, C> = Readonly<Record<K, C>>;

/** The package version as major and minor numbers (vsr_cluster_version_*). */
export function packageVersion(): { major: number; minor: number } {
  const path = new URL('../../package.json', import.meta.url);
  const parsed = JSON.parse(readFileSync(path, 'utf8')) as { version?: unknown };
  const match = /^(\d+)\.(\d+)\./.exec(String(parsed.version));
  assert(match !== null, 'package.json holds a semantic version');
  return { major: Number(match[1]), minor: Number(match[2]) };
}

export interface VsrMetricsOptions {
  replicaId: number;
  /** kmb_write_duration_seconds' cell, whose bounds include the client latency buckets. */
  clientLatency: HistogramCell;
  /** kmb_log_bytes_total's cell: the bytes appended to the journal. */
  bytesWritten: CounterCell;
  /** kmb_log_size_bytes' cell. */
  logSizeBytes: GaugeCell;
  /** kmb_requests_in_flight's cell: requests accepted and not yet answered. */
  pendingRequests: GaugeCell;
}

export class VsrMetrics {
  readonly registry: Registry;

  readonly prepareLatency: HistogramCell;
  readonly commitLatency: HistogramCell;
  readonly clientLatency: HistogramCell;
  readonly viewChangeLatency: HistogramCell;
  readonly recoveryLatency: HistogramCell;
  /** Never observed: this build has no state transfer. */
  readonly stateTransferLatency: HistogramCell;
  readonly repairLatency: HistogramCell;

  readonly operations: ByLabel<'success' | 'failure', CounterCell>;
  readonly messagesSent: ByLabel<VsrMessageType, CounterCell>;
  readonly messagesReceived: ByLabel<VsrMessageType, CounterCell>;
  readonly byzantineRejections: ByLabel<VsrByzantineReason, CounterCell>;
  readonly checksumFailures: ByLabel<VsrChecksumComponent, CounterCell>;
  readonly repairsSucceeded: CounterCell;
  readonly repairsFailed: ReadCell;
  readonly viewChanges: ByLabel<VsrViewChangeReason, CounterCell>;
  readonly clientSessionsEvicted: CounterCell;
  readonly clockSamples: ReadCell;
  readonly clockSyncErrors: ReadCell;
  readonly duplicateRequests: ReadCell;
  readonly scrubToursCompleted: ReadCell;
  readonly scrubCorruptionsDetected: ReadCell;

  readonly replicaStatus: ReadCell;
  readonly viewNumber: ReadCell;
  readonly commitNumber: ReadCell;
  readonly opNumber: ReadCell;
  readonly logEntries: ReadCell;
  readonly quorumSize: ReadCell;
  readonly clusterSize: ReadCell;
  readonly replicaLagOperations: ReadCell;
  readonly prepareOkVotes: ReadCell;
  readonly clockOffsetSeconds: ReadCell;
  readonly clientSessionsActive: ReadCell;
  readonly repairBudgetAvailable: ReadCell;
  readonly repairInflight: ReadCell;
  /** vsr_repair_ewma_latency_seconds, one series per peer (added by repairEwmaLatency). */
  readonly repairEwmaFamily: GaugeFamily;

  readonly memoryUsedBytes: GaugeCell;
  readonly networkBandwidthBytesPerSecond: GaugeCell;
  readonly diskIops: GaugeCell;
  readonly diskBandwidthBytesPerSecond: GaugeCell;
  readonly cpuUtilizationPercent: GaugeCell;
  readonly scrubThroughputOpsPerSecond: GaugeCell;

  readonly reconfigState: GaugeCell;
  readonly standbys: GaugeCell;
  readonly standbysHealthy: GaugeCell;
  readonly standbyLagOperations: GaugeCell;
  readonly logSizeBytes: GaugeCell;
  readonly pendingRequests: GaugeCell;

  private readonly repairEwmaCells = new Map<number, ReadCell>();

  // Longer than the house's 70 lines on purpose: it is a flat table of instrument definitions
  // (name, help, labels), read top to bottom like docs/metrics.md; splitting it would scatter
  // the names across helpers without shortening any logic (HOUSE_RULES: clarity wins).
  constructor(options: VsrMetricsOptions) {
    assert(Number.isSafeInteger(options.replicaId) && options.replicaId >= 0, 'replica id >= 0');
    this.registry = new Registry();
    this.registry.setDefaultLabels({ replica_id: String(options.replicaId) });
    this.clientLatency = options.clientLatency;
    this.logSizeBytes = options.logSizeBytes;
    this.pendingRequests = options.pendingRequests;

    this.prepareLatency = this.histogram('prepare', 'vsr_prepare_latency_seconds', helps.prepare);
    this.commitLatency = this.histogram('commit', 'vsr_commit_latency_seconds', helps.commit);
    this.histogramOf('client', 'vsr_client_latency_seconds', helps.client).adopt(
      options.clientLatency,
    );
    this.viewChangeLatency = this.histogram(
      'viewChange',
      'vsr_view_change_latency_seconds',
      'Time from a view change starting to this replica being normal in the new view.',
    );
    this.recoveryLatency = this.histogram(
      'recovery',
      'vsr_recovery_latency_seconds',
      'Time from process start (journal replay included) to normal status.',
    );
    this.stateTransferLatency = this.histogram(
      'stateTransfer',
      'vsr_state_transfer_latency_seconds',
      'Time to complete a state transfer. Always empty: this build has no state transfer.',
    );
    this.repairLatency = this.histogram(
      'repair',
      'vsr_repair_latency_seconds',
      'Time from requesting a missing or corrupt op from a peer to holding it.',
    );

    this.operations = this.labelled(
      'vsr_operations_total',
      'Requests applied after commit (start-up replay excluded): success when the kernel ' +
        'accepted, failure when it answered an error.',
      'status',
      ['success', 'failure'],
    );
    this.messagesSent = this.labelled(
      'vsr_messages_sent_total',
      'Replica messages sent to peers.',
      'message_type',
      vsrMessageTypes,
    );
    this.messagesReceived = this.labelled(
      'vsr_messages_received_total',
      'Replica messages received from peers (decoded, before any check).',
      'message_type',
      vsrMessageTypes,
    );
    this.byzantineRejections = this.labelled(
      'vsr_byzantine_rejections_total',
      'Messages or links from peers refused as invalid, by reason.',
      'reason',
      vsrByzantineReasons,
    );
    this.checksumFailures = this.labelled(
      'vsr_checksum_failures_total',
      'Checksum failures found on this replica: journal records (log) or superblock copies.',
      'component',
      vsrChecksumComponents,
    );
    const repairs = this.counterFamily(
      'vsr_repairs_total',
      'Log repairs: success when a requested op arrived and was kept, failure when a request ' +
        'to a peer expired unanswered.',
      ['status'],
    );
    this.repairsSucceeded = repairs.cell({ status: 'success' });
    this.repairsFailed = repairs.reader({ status: 'failure' });
    this.viewChanges = this.labelled(
      'vsr_view_changes_total',
      'View changes this replica started or joined, by what triggered them.',
      'reason',
      vsrViewChangeReasons,
    );
    const counter = (name: string, help: string): CounterCell =>
      this.counterFamily(name, help).cell();
    const countReader = (name: string, help: string): ReadCell =>
      this.counterFamily(name, help).reader();
    const gauge = (name: string, help: string): GaugeCell => this.gaugeFamily(name, help).cell();
    const reader = (name: string, help: string): ReadCell => this.gaugeFamily(name, help).reader();

    this.counterFamily('vsr_bytes_written_total', 'Bytes appended to the journal.').adopt(
      options.bytesWritten,
    );
    this.clientSessionsEvicted = counter(
      'vsr_client_sessions_evicted_total',
      'Client sessions evicted (the table was full; the oldest went).',
    );
    this.clockSamples = countReader(
      'vsr_clock_samples_total',
      'Clock samples (ping/pong round trips) accepted for clock synchronisation.',
    );
    this.clockSyncErrors = countReader(
      'vsr_clock_sync_errors_total',
      'Clock synchronisation windows that ended without a quorum of agreeing clocks.',
    );
    this.duplicateRequests = countReader(
      'vsr_duplicate_requests_total',
      'Client requests the primary recognised as duplicates (answered from the session or ' +
        'dropped while in flight).',
    );
    this.scrubToursCompleted = countReader(
      'vsr_scrub_tours_completed_total',
      'Complete passes of the scrubber over the committed journal.',
    );
    this.scrubCorruptionsDetected = countReader(
      'vsr_scrub_corruptions_detected_total',
      'Journal records the scrubber found corrupt (then repaired from peers).',
    );
    counter(
      'vsr_reconfig_transitions_total',
      'Reconfigurations. Always 0: this build has no reconfiguration.',
    );
    counter(
      'vsr_standby_promotions_total',
      'Standby promotions. Always 0: this build has no standby replicas.',
    );

    this.replicaStatus = reader(
      'vsr_replica_status',
      'Replica status: 0 normal, 1 view change, 2 recovering (3, state transfer, does not ' +
        'exist in this build).',
    );
    this.viewNumber = reader('vsr_view_number', 'Current view number.');
    this.commitNumber = reader('vsr_commit_number', 'Highest op executed (applied) here.');
    this.opNumber = reader('vsr_op_number', 'Highest op in this replica log.');
    this.gaugeFamily('vsr_log_size_bytes', 'Size of the journal on disk.').adopt(
      options.logSizeBytes,
    );
    this.logEntries = reader('vsr_log_entries', 'Entries (ops) in the journal.');
    this.quorumSize = reader('vsr_quorum_size', 'Replicas needed for a quorum.');
    this.clusterSize = reader('vsr_cluster_size', 'Replicas in the cluster.');
    this.replicaLagOperations = reader(
      'vsr_replica_lag_operations',
      'Ops this replica trails the highest op it knows of from the leader (0 on the leader).',
    );
    this.gaugeFamily('vsr_pending_requests', 'Client requests accepted, not yet answered.').adopt(
      options.pendingRequests,
    );
    this.prepareOkVotes = reader(
      'vsr_prepare_ok_votes',
      'On the leader: replicas (itself included) whose acknowledgements cover the oldest ' +
        'uncommitted op, or the newest op when none is pending. NaN on other replicas.',
    );
    this.clockOffsetSeconds = reader(
      'vsr_clock_offset_seconds',
      'Correction cluster time applies to this replica wall clock: 0 while it lies in the ' +
        'quorum interval, else the distance to it (0 on a single node; NaN while the cluster ' +
        'clocks do not agree).',
    );
    this.clientSessionsActive = reader(
      'vsr_client_sessions_active',
      'Client sessions in the replicated client table.',
    );
    this.repairBudgetAvailable = reader(
      'vsr_repair_budget_available',
      'Repair requests that may still be sent (capacity minus in flight).',
    );
    this.repairInflight = reader('vsr_repair_inflight', 'Repair requests in flight.');
    this.repairEwmaFamily = new GaugeFamily({
      ...this.family(
        'vsr_repair_ewma_latency_seconds',
        'Moving average of repair answer latency, per peer.',
      ),
      labelNames: ['peer'],
    });

    this.memoryUsedBytes = gauge('vsr_memory_used_bytes', 'Resident set size of the process.');
    this.networkBandwidthBytesPerSecond = gauge(
      'vsr_network_bandwidth_bytes_per_second',
      'Bytes per second sent and received: replica messages and client connections.',
    );
    this.diskIops = gauge(
      'vsr_disk_iops',
      'Read and write system calls per second (/proc/self/io syscr+syscw; NaN where absent).',
    );
    this.diskBandwidthBytesPerSecond = gauge(
      'vsr_disk_bandwidth_bytes_per_second',
      'Bytes per second read from and written to storage (/proc/self/io; NaN where absent).',
    );
    this.cpuUtilizationPercent = gauge(
      'vsr_cpu_utilization_percent',
      'CPU time (user + system) of the process as a percentage of one core.',
    );
    this.scrubThroughputOpsPerSecond = gauge(
      'vsr_scrub_throughput_ops_per_second',
      'Journal records the scrubber verified per second.',
    );

    this.reconfigState = gauge(
      'vsr_reconfig_state',
      'Reconfiguration state: 0 stable, 1 joint. Always 0: this build has no reconfiguration.',
    );
    const version = packageVersion();
    gauge('vsr_cluster_version_major', 'Software version of this replica (major).').set(
      version.major,
    );
    gauge('vsr_cluster_version_minor', 'Software version of this replica (minor).').set(
      version.minor,
    );
    this.standbys = gauge('vsr_standbys', 'Registered standbys. Always 0: no standbys here.');
    this.standbysHealthy = gauge(
      'vsr_standbys_healthy',
      'Healthy standbys. Always 0: this build has no standby replicas.',
    );
    this.standbyLagOperations = gauge(
      'vsr_standby_lag_operations',
      'Standby lag behind the cluster. Always 0: this build has no standby replicas.',
    );
  }

  /** The vsr_repair_ewma_latency_seconds series for one peer, created on first use. */
  repairEwmaLatency(peer: number): ReadCell {
    const cached = this.repairEwmaCells.get(peer);
    if (cached !== undefined) return cached;
    assert(Number.isSafeInteger(peer) && peer >= 0 && peer < 64, 'peer is a replica index');
    const cell = this.repairEwmaFamily.reader({ peer: String(peer) });
    this.repairEwmaCells.set(peer, cell);
    return cell;
  }

  /** Every repair-latency series created so far, by peer (for the compat exposition). */
  repairEwmaSeries(): ReadonlyMap<number, ReadCell> {
    return this.repairEwmaCells;
  }

  private family(name: string, help: string): FamilyOptions {
    return { registry: this.registry, name, help };
  }

  private counterFamily(name: string, help: string, labelNames: string[] = []): CounterFamily {
    return new CounterFamily({ ...this.family(name, help), labelNames });
  }

  private gaugeFamily(name: string, help: string): GaugeFamily {
    return new GaugeFamily(this.family(name, help));
  }

  private histogramOf(latency: VsrLatency, name: string, help: string): HistogramFamily {
    return new HistogramFamily({
      ...this.family(name, help),
      upperBounds: secondsBuckets(latency),
    });
  }

  private histogram(latency: VsrLatency, name: string, help: string): HistogramCell {
    return this.histogramOf(latency, name, help).cell();
  }

  private labelled<K extends string>(
    name: string,
    help: string,
    label: string,
    values: readonly K[],
  ): ByLabel<K, CounterCell> {
    const family = this.counterFamily(name, help, [label]);
    const cells = {} as Record<K, CounterCell>;
    for (const value of values) cells[value] = family.cell({ [label]: value });
    return cells;
  }
}

const helps = {
  prepare: 'On the leader: time from sending a prepare to a quorum holding it (commit point).',
  commit: 'On the leader: time from an op reaching its quorum to the commit being broadcast.',
  client: 'Client request latency, from receipt to reply (same cell as kmb_write_duration).',
} as const;
