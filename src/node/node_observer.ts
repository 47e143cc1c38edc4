// The observer sink: the replica's telemetry turned into metrics, log lines, spans and the
// operator's history of view changes. Dropping everything it is given changes nothing about the
// replica, its replies or the views (message.ts: `event` is telemetry only); the node's
// dropTelemetryEvents test option does exactly that to prove it.

import type { KernelOutput } from '../kernel/kernel.js';
import type { Metrics } from '../observability/metrics.js';
import type { ObserverSink } from '../vsr/effect_driver.js';
import type { Effect, ReplicaEvent } from '../vsr/message.js';
import type { NodeEventLog } from './node_event_log.js';
import type { NodeMetrics } from './node_metrics.js';
import type { NodeTracing } from './node_tracing.js';
import type { ViewChangeHistory } from './view_change_history.js';

/** What the observer reads of the replica. */
export interface ObservedReplica {
  readonly view: number;
  readonly status: string;
  readonly primaryIndex: number;
  readonly pendingRequestCount: number;
}

export interface NodeObserverOptions {
  readonly metrics: Metrics;
  readonly nodeMetrics: NodeMetrics;
  readonly eventLog: NodeEventLog;
  readonly tracing: NodeTracing | null;
  readonly viewChanges: ViewChangeHistory;
  readonly replica: ObservedReplica;
  /** Tests only: perform no telemetry event (see NodeDependencies.dropTelemetryEvents). */
  readonly dropEvents: boolean;
}

export class NodeObserver implements ObserverSink<KernelOutput> {
  /** The timestamp of the prepare at the commit number, for replication lag in ms. */
  commitTimestampUs = 0;

  constructor(private readonly options: NodeObserverOptions) {}

  effect(effect: Effect<KernelOutput>): void {
    if (this.options.tracing !== null) this.options.tracing.onEffect(effect);
  }

  settled(): void {
    this.options.metrics.requestsInFlight.set(this.options.replica.pendingRequestCount);
  }

  event(event: ReplicaEvent<KernelOutput>): void {
    if (this.options.dropEvents) return;
    const { eventLog, nodeMetrics, metrics, viewChanges } = this.options;
    eventLog.onEvent(event);
    nodeMetrics.onEvent(event);
    switch (event.kind) {
      case 'committed':
        this.commitTimestampUs = event.timestampUs;
        metrics.consensusCommitsTotal.inc(event.requestCount);
        break;
      case 'status_changed':
        this.updateConsensusGauges();
        break;
      case 'view_change_started':
        viewChanges.started(event.oldView, event.view, event.reason);
        break;
      case 'view_change_finished':
        viewChanges.finished(event.oldView, event.view, event.primary);
        this.updateConsensusGauges();
        break;
      default:
        break;
    }
  }

  /** kmb_consensus_view and the leader gauge, from the replica as it is now. */
  updateConsensusGauges(): void {
    const { metrics, replica } = this.options;
    metrics.consensusView.set(replica.view);
    metrics.setConsensusLeader(replica.status === 'normal' ? replica.primaryIndex : null);
  }
}
