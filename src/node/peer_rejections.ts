// What the node does when a peer's input is refused (issue 14, "Peers that misbehave" in
// docs/operations.md): the replica bus refuses links (another cluster, a hello claiming this
// replica's index, a second hello for a live link, bad framing), the replica refuses messages
// (message_rejected events: a sender, view or op out of range, a later view while this one is
// healthy, an unreachable commit claim). Each refusal is counted in
// vsr_byzantine_rejections_total{reason} (by NodeMetrics) and logged as a WARN line rate-limited
// per peer and reason, so that a flood of forged messages costs one line per interval.

import { errorCodes } from '../core/errors.js';
import type { BusRejection } from '../net/replica_bus.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { VsrByzantineReason } from '../observability/vsr_metrics.js';
import type { Effect } from '../vsr/message.js';
import type { NodeMetrics } from './node_metrics.js';

/** One log line per peer and reason per this interval. */
export const peerRejectionLogIntervalMs = 10_000;

const busReasons: Record<BusRejection, VsrByzantineReason> = {
  cluster_mismatch: 'handshake_rejected',
  handshake: 'handshake_rejected',
  link_taken: 'link_taken',
  self_index: 'self_index',
};

/** A link refused by the replica bus: counted and logged. */
export function onBusRejected(
  deps: { metrics: Metrics; nodeMetrics: NodeMetrics; logger: Logger },
  remote: string,
  reason: string,
  kind: BusRejection,
): void {
  if (kind === 'cluster_mismatch') deps.metrics.errorsTotal(errorCodes.cluster_mismatch).inc();
  deps.nodeMetrics.onRejected(busReasons[kind]);
  const key = `peer:${remote}:${kind}`;
  deps.logger.warnRateLimited(key, peerRejectionLogIntervalMs, 'Peer rejected', {
    remote,
    reason,
    kind,
  });
}

/**
 * Logs the replica's refusals among `effects` (they are counted by NodeMetrics.onEvent when the
 * effects are performed). `link` is the replica index of the link the message came on.
 */
export function logReplicaRejections(
  logger: Logger,
  link: number,
  effects: readonly Effect<unknown>[],
): void {
  for (const effect of effects) {
    if (effect.kind !== 'event' || effect.event.kind !== 'message_rejected') continue;
    const { reason, messageKind, from } = effect.event;
    const key = `replica-refused:${link}:${reason}`;
    logger.warnRateLimited(key, peerRejectionLogIntervalMs, 'Replica message refused', {
      peer: link,
      claimed: from,
      reason,
      message_type: messageKind,
    });
  }
}
