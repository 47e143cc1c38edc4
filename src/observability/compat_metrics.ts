// The /metrics/compat exposition: the spec documents' original metric names that
// `promtool check metrics` rejects (abbreviated units `_ms` and `_per_sec`, `_count` on a gauge,
// `_total` on a gauge), served from the very cells /metrics renders under lint-clean names
// (names.md). It exists so the spec's own PromQL works when Prometheus scrapes it as a second
// job; it does not pass promtool, by design.
//
// Invariants: only the mapped names appear here, each once; values are converted from the
// cells' base units (seconds → milliseconds) at render time; histograms report the spec's ms
// bucket bounds exactly (the cells' bounds are those divided by 1000). Series that appear on
// /metrics later (one per peer) appear here at the same scrape, since the families read the
// live series lists.

import type { Registry } from 'prom-client';
import { GaugeFamily, HistogramFamily, type Readable } from './metric_cells.js';
import type { Metrics } from './metrics.js';
import {
  secondsBuckets,
  vsrLatencyBucketsMs,
  type VsrLatency,
  type VsrMetrics,
} from './vsr_metrics.js';

/** Lint-clean name on /metrics → original name on /metrics/compat. */
export const compatNames: Readonly<Record<string, string>> = {
  vsr_prepare_latency_seconds: 'vsr_prepare_latency_ms',
  vsr_commit_latency_seconds: 'vsr_commit_latency_ms',
  vsr_client_latency_seconds: 'vsr_client_latency_ms',
  vsr_view_change_latency_seconds: 'vsr_view_change_latency_ms',
  vsr_recovery_latency_seconds: 'vsr_recovery_latency_ms',
  vsr_state_transfer_latency_seconds: 'vsr_state_transfer_latency_ms',
  vsr_repair_latency_seconds: 'vsr_repair_latency_ms',
  vsr_clock_offset_seconds: 'vsr_clock_offset_ms',
  vsr_repair_ewma_latency_seconds: 'vsr_repair_ewma_latency_ms',
  vsr_log_entries: 'vsr_log_entry_count',
  vsr_repair_inflight: 'vsr_repair_inflight_count',
  vsr_standbys: 'vsr_standby_count',
  vsr_standbys_healthy: 'vsr_standby_healthy_count',
  vsr_network_bandwidth_bytes_per_second: 'vsr_network_bandwidth_bytes_per_sec',
  vsr_disk_bandwidth_bytes_per_second: 'vsr_disk_bandwidth_bytes_per_sec',
  vsr_scrub_throughput_ops_per_second: 'vsr_scrub_throughput_ops_per_sec',
  kimberlite_replication_lag_seconds: 'kimberlite_replication_lag_ms',
  kimberlite_cluster_replicas: 'kimberlite_cluster_replicas_total',
};

function compat(name: string): string {
  const original = compatNames[name];
  if (original === undefined) throw new Error(`no compat name for ${name}`);
  return original;
}

/** A gauge family whose series are read from a live map (series added later show up). */
class LiveGaugeFamily extends GaugeFamily {
  constructor(
    registry: Registry,
    name: string,
    help: string,
    private readonly live: () => ReadonlyMap<number, Readable>,
    private readonly label: string,
    private readonly scale: number,
  ) {
    super({ registry, name, help, labelNames: [label] });
  }

  protected override samples(): { labels: Record<string, string>; value: number }[] {
    const samples: { labels: Record<string, string>; value: number }[] = [];
    for (const [index, source] of this.live()) {
      samples.push({
        labels: { [this.label]: String(index) },
        value: source.current() * this.scale,
      });
    }
    return samples;
  }
}

/** Registers the compat vsr_* names on `registry` (default label replica_id). */
export function registerVsrCompat(registry: Registry, vsr: VsrMetrics): void {
  const histogram = (latency: VsrLatency, name: string, help: string) =>
    new HistogramFamily({
      registry,
      name: compat(name),
      help,
      upperBounds: secondsBuckets(latency),
      scale: 1000,
      renderedBounds: vsrLatencyBucketsMs[latency],
    });
  histogram('prepare', 'vsr_prepare_latency_seconds', 'Prepare to quorum (ms).').adopt(
    vsr.prepareLatency,
  );
  histogram('commit', 'vsr_commit_latency_seconds', 'Quorum to commit broadcast (ms).').adopt(
    vsr.commitLatency,
  );
  histogram('client', 'vsr_client_latency_seconds', 'Client request latency (ms).').adopt(
    vsr.clientLatency,
  );
  histogram('viewChange', 'vsr_view_change_latency_seconds', 'View change time (ms).').adopt(
    vsr.viewChangeLatency,
  );
  histogram('recovery', 'vsr_recovery_latency_seconds', 'Recovery time (ms).').adopt(
    vsr.recoveryLatency,
  );
  histogram(
    'stateTransfer',
    'vsr_state_transfer_latency_seconds',
    'State transfer time (ms); always empty in this build.',
  ).adopt(vsr.stateTransferLatency);
  histogram('repair', 'vsr_repair_latency_seconds', 'Repair time of one op (ms).').adopt(
    vsr.repairLatency,
  );
  const gauge = (name: string, help: string, source: Readable, scale = 1): void => {
    new GaugeFamily({ registry, name: compat(name), help }).adopt(source, source.labels, scale);
  };
  gauge(
    'vsr_clock_offset_seconds',
    'Clock offset from cluster time (ms).',
    vsr.clockOffsetSeconds,
    1000,
  );
  gauge('vsr_log_entries', 'Entries in the journal.', vsr.logEntries);
  gauge('vsr_repair_inflight', 'Repair requests in flight.', vsr.repairInflight);
  gauge('vsr_standbys', 'Registered standbys (always 0).', vsr.standbys);
  gauge('vsr_standbys_healthy', 'Healthy standbys (always 0).', vsr.standbysHealthy);
  gauge(
    'vsr_network_bandwidth_bytes_per_second',
    'Network bytes per second.',
    vsr.networkBandwidthBytesPerSecond,
  );
  gauge(
    'vsr_disk_bandwidth_bytes_per_second',
    'Storage bytes per second.',
    vsr.diskBandwidthBytesPerSecond,
  );
  gauge(
    'vsr_scrub_throughput_ops_per_second',
    'Scrubbed records per second.',
    vsr.scrubThroughputOpsPerSecond,
  );
  new LiveGaugeFamily(
    registry,
    compat('vsr_repair_ewma_latency_seconds'),
    'Moving average of repair answer latency, per peer (ms).',
    () => vsr.repairEwmaSeries(),
    'peer',
    1000,
  );
}

/** Registers the compat kimberlite_* names on `registry` (default label node_id). */
export function registerNodeCompat(registry: Registry, metrics: Metrics): void {
  new LiveGaugeFamily(
    registry,
    compat('kimberlite_replication_lag_seconds'),
    'On the leader, per backup: replication lag (ms).',
    () => metrics.replicationLagSeries(),
    'replica_id',
    1000,
  );
  const replicas = new GaugeFamily({
    registry,
    name: compat('kimberlite_cluster_replicas'),
    help: 'Replicas this node sees healthy or unreachable.',
    labelNames: ['status'],
  });
  replicas.adopt(metrics.clusterReplicas.healthy);
  replicas.adopt(metrics.clusterReplicas.unreachable);
}
