// Turns what the replica reports (events, effects, read-only state) and what the shell sees
// (sockets, storage at start) into instrument updates: the vsr_* and kimberlite_* metrics that
// are not plain counters of node.ts' own work (HOUSE_RULES §10: the core emits, the shell
// measures). node.ts calls onEvent / onSend / onReceive / onRejected from the places it already
// handles those, and bind() once the replica exists; this file owns every timing and sampling.
//
// Timings (seconds, from a monotonic clock) are taken when the shell performs an effect, which
// is when the entry point that produced it ran:
//   prepare latency  'prepared' (leader) → 'committed' of that op at the leader (quorum reached)
//   commit latency   quorum → the first send carrying a commit number >= the op (commit or
//                    prepare message: the commit broadcast)
//   view change      'view_change_started' → status normal again
//   recovery         process start (journal replay included) → status normal the first time
//   repair           'repair_requested' of an op → 'repair_completed' of it
// Gauges of replica state are read at scrape time (ReadCells), never copied on the write path;
// counters the replica keeps (clock samples, scrub tours, repair expiries, duplicates) are read
// the same way through a monotonic accumulator, so a component replaced after a restart of the
// protocol cannot make a counter go backwards.
//
// Invariants: per-op timing state lives in fixed rings of opRingSize slots (indexed by op,
// validated by the op stored beside the time), so nothing grows with the log; pending repairs are
// bounded by repairPendingCountMax; a replayed commit (start-up) is never timed or counted as an
// operation.

import type { Socket } from 'node:net';
import { constants } from '../core/constants.js';
import { asReplicaIndex } from '../core/types.js';
import type { ReplicaIndex } from '../core/types.js';
import type { Metrics } from '../observability/metrics.js';
import { ResourceSampler } from '../observability/resource_metrics.js';
import {
  vsrMessageTypes,
  vsrReplicaStatus,
  vsrViewChangeReasons,
  type VsrByzantineReason,
  type VsrMessageType,
  type VsrViewChangeReason,
} from '../observability/vsr_metrics.js';
import { frameHeaderSizeBytes } from '../net/frame.js';
import type { Replica } from '../vsr/replica.js';
import type {
  ReplicaEvent,
  ReplicaMessage,
  ReplicaMessageKind,
  ViewChangeReason,
} from '../vsr/message.js';
import type { KernelOutput } from '../kernel/kernel.js';

// The metric label lists must be exactly the replica's unions (checked at compile time).
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : never) : never;
const messageTypesMatch: Same<VsrMessageType, ReplicaMessageKind> = true;
const reasonsMatch: Same<VsrViewChangeReason, ViewChangeReason> = true;
void messageTypesMatch;
void reasonsMatch;
void vsrMessageTypes;
void vsrViewChangeReasons;

/** Slots of the per-op timing rings (a power of two, far above any pipeline). */
export const opRingSize = 4096;
/** Ops whose repair is being timed at once; more are simply not timed. */
export const repairPendingCountMax = 4096;

/** Monotonic seconds. */
function nowSeconds(): number {
  return performance.now() / 1000;
}

/** Sums the growth of a counter read from elsewhere; a drop means it restarted from 0. */
class Accumulated {
  private last = 0;
  private total = 0;

  read(raw: number): number {
    this.total += raw >= this.last ? raw - this.last : raw;
    this.last = raw;
    return this.total;
  }
}

/** Times per op: when a prepare was sent, when it reached its quorum. */
class OpRing {
  readonly ops = new Float64Array(opRingSize).fill(-1);
  readonly times = new Float64Array(opRingSize);

  set(op: number, time: number): void {
    const slot = op & (opRingSize - 1);
    this.ops[slot] = op;
    this.times[slot] = time;
  }

  /** The time recorded for op, or -1. */
  get(op: number): number {
    const slot = op & (opRingSize - 1);
    return this.ops[slot] === op ? (this.times[slot] ?? -1) : -1;
  }

  clear(): void {
    this.ops.fill(-1);
  }
}

export interface NodeMetricsOptions {
  readonly metrics: Metrics;
  readonly nodeId: number;
  readonly replicaCount: number;
  readonly dataDir: string;
  /**
   * When recovery began, in performance.now() seconds; default 0, the process start (a server
   * process recovers from the moment it was restarted).
   */
  readonly startedSeconds?: number;
  /** Seconds between resource samples (default 1). */
  readonly sampleIntervalSeconds?: number;
}

export class NodeMetrics {
  private readonly metrics: Metrics;
  private replica: Replica<KernelOutput> | null = null;
  private readonly prepared = new OpRing();
  private readonly quorum = new OpRing();
  /** The first op the leader prepared in this view, or -1. */
  private viewFirstPreparedOp = -1;
  /** The highest commit number sent to backups (commit broadcast). */
  private broadcastOp = 0;
  private viewChangeStartedSeconds = -1;
  private recovered = false;
  private replaying = true;
  private readonly repairRequested = new Map<number, number>();
  private readonly sockets = new Set<Socket>();
  private closedSocketBytes = 0;
  private replicaMessageBytes = 0;
  private readonly sampler: ResourceSampler;
  private readonly scrubbed = new Accumulated();
  private scrubbedLast = -1;

  constructor(private readonly options: NodeMetricsOptions) {
    this.metrics = options.metrics;
    this.sampler = new ResourceSampler({
      metrics: options.metrics,
      dataDir: options.dataDir,
      networkBytes: () => this.networkBytes(),
      onSample: (seconds) => this.sampleRates(seconds),
      ...(options.sampleIntervalSeconds === undefined
        ? {}
        : { intervalSeconds: options.sampleIntervalSeconds }),
    });
  }

  /** Binds every read-at-scrape series to the replica and starts the resource sampler. */
  bind(replica: Replica<KernelOutput>): void {
    this.replica = replica;
    this.bindReplicaGauges(replica);
    this.bindReplicaCounters(replica);
    this.bindPeers(replica);
    this.sampler.start();
  }

  /** What opening storage found: invalid superblock copies, a journal cut at corruption. */
  onStorageOpened(
    superblock: { readonly copies: readonly { readonly valid: boolean }[] },
    journalCut: { readonly reason: string } | null,
  ): void {
    const invalid = superblock.copies.filter((copy) => !copy.valid).length;
    this.metrics.vsr.checksumFailures.superblock.inc(invalid);
    if (journalCut !== null && journalCut.reason === 'corruption') {
      this.metrics.vsr.checksumFailures.log.inc();
    }
  }

  /** Start-up replay is over: commits from now on are new. */
  replayFinished(): void {
    this.replaying = false;
  }

  stop(): void {
    this.sampler.stop();
  }

  /** A client connection: its bytes count towards the network bandwidth. */
  trackSocket(socket: Socket): void {
    if (this.sockets.size >= constants.connectionCountMax) return;
    this.sockets.add(socket);
    socket.once('close', () => {
      this.closedSocketBytes += socket.bytesRead + socket.bytesWritten;
      this.sockets.delete(socket);
    });
  }

  /** A replica message the shell handed to the bus (`sent`: the bus queued it). */
  onSend(message: ReplicaMessage, bodyBytes: number, sent: boolean): void {
    if (sent) {
      this.metrics.vsr.messagesSent[message.kind].inc();
      this.replicaMessageBytes += bodyBytes + frameHeaderSizeBytes + 1;
    }
    let commit = -1;
    if (message.kind === 'commit') commit = message.commit;
    else if (message.kind === 'prepare') commit = message.prepare.header.commit;
    if (commit > this.broadcastOp) this.commitBroadcast(commit);
  }

  /** A replica message decoded from a peer, before any check. */
  onReceive(message: ReplicaMessage, bodyBytes: number): void {
    this.metrics.vsr.messagesReceived[message.kind].inc();
    this.replicaMessageBytes += bodyBytes + frameHeaderSizeBytes + 1;
  }

  /** Counts bytes of a replica message that did not decode. */
  onUndecodable(bodyBytes: number): void {
    this.replicaMessageBytes += bodyBytes + frameHeaderSizeBytes + 1;
    this.onRejected('malformed');
  }

  onRejected(reason: VsrByzantineReason): void {
    this.metrics.vsr.byzantineRejections[reason].inc();
  }

  /** One event; the clock is read only by the kinds that time something. */
  onEvent(event: ReplicaEvent<KernelOutput>): void {
    switch (event.kind) {
      case 'prepared':
        if (this.viewFirstPreparedOp < 0) this.viewFirstPreparedOp = event.op;
        this.prepared.set(event.op, nowSeconds());
        return;
      case 'committed':
        if (!event.replay) this.onCommitted(event.op);
        return;
      case 'applied':
        if (!this.replaying) this.onApplied(event.output);
        return;
      case 'status_changed':
        this.onStatus(event.status, nowSeconds());
        return;
      case 'view_change_started':
        this.metrics.viewChangesTotal(event.reason).inc();
        if (this.viewChangeStartedSeconds < 0) this.viewChangeStartedSeconds = nowSeconds();
        this.resetView();
        return;
      case 'became_primary':
        this.resetView();
        this.broadcastOp = event.commit;
        return;
      default:
        this.onRareEvent(event, nowSeconds());
    }
  }

  private onRareEvent(event: ReplicaEvent<KernelOutput>, now: number): void {
    const vsr = this.metrics.vsr;
    switch (event.kind) {
      case 'session_evicted':
        if (!this.replaying) vsr.clientSessionsEvicted.inc();
        return;
      case 'repair_requested':
        this.onRepairRequested(event.opFirst, event.opLast, now);
        return;
      case 'repair_completed': {
        vsr.repairsSucceeded.inc();
        const requested = this.repairRequested.get(event.op);
        if (requested === undefined) return;
        this.repairRequested.delete(event.op);
        vsr.repairLatency.observe(now - requested);
        return;
      }
      case 'checksum_failure':
        if (event.source === 'journal') vsr.checksumFailures.log.inc();
        else this.onRejected(event.from === null ? 'chain_mismatch' : 'bad_checksum');
        return;
      case 'log_divergence':
        this.onRejected('log_divergence');
        return;
      case 'message_rejected':
        this.onRejected(event.reason === 'invalid_sender' ? 'invalid_header' : event.reason);
        return;
      default:
        return;
    }
  }

  private onCommitted(op: number): void {
    const replica = this.replica;
    if (replica === null || replica.status !== 'normal' || !replica.isPrimary) return;
    const preparedAt = this.prepared.get(op);
    if (preparedAt < 0) return;
    const now = nowSeconds();
    const seconds = now - preparedAt;
    this.metrics.vsr.prepareLatency.observe(seconds);
    this.metrics.commitLatencySummary.observe(seconds);
    this.quorum.set(op, now);
  }

  private commitBroadcast(commit: number): void {
    const now = nowSeconds();
    const first = Math.max(this.broadcastOp + 1, commit - opRingSize + 1);
    for (let op = first; op <= commit; op++) {
      const quorumAt = this.quorum.get(op);
      if (quorumAt >= 0) this.metrics.vsr.commitLatency.observe(now - quorumAt);
    }
    this.broadcastOp = commit;
  }

  private onApplied(output: KernelOutput | null): void {
    const failed = output !== null && output.result.status === 'error';
    this.metrics.vsr.operations[failed ? 'failure' : 'success'].inc();
  }

  private onStatus(status: 'recovering' | 'normal' | 'view_change', now: number): void {
    if (status !== 'normal') return;
    if (!this.recovered) {
      this.recovered = true;
      this.metrics.vsr.recoveryLatency.observe(
        Math.max(0, now - (this.options.startedSeconds ?? 0)),
      );
    }
    if (this.viewChangeStartedSeconds >= 0) {
      this.metrics.vsr.viewChangeLatency.observe(now - this.viewChangeStartedSeconds);
      this.viewChangeStartedSeconds = -1;
    }
  }

  private onRepairRequested(opFirst: number, opLast: number, now: number): void {
    for (let op = opFirst; op <= opLast; op++) {
      if (this.repairRequested.has(op)) continue;
      if (this.repairRequested.size >= repairPendingCountMax) return;
      this.repairRequested.set(op, now);
    }
  }

  /** A new view: per-op times of the old one no longer describe this leader's prepares. */
  private resetView(): void {
    this.prepared.clear();
    this.quorum.clear();
    this.viewFirstPreparedOp = -1;
  }

  private networkBytes(): number {
    let bytes = this.closedSocketBytes + this.replicaMessageBytes;
    for (const socket of this.sockets) bytes += socket.bytesRead + socket.bytesWritten;
    return bytes;
  }

  /** Per-interval rates that are not the OS's: scrub throughput. */
  private sampleRates(seconds: number): void {
    const replica = this.replica;
    if (replica === null || seconds <= 0) return;
    const scrubbed = this.scrubbed.read(replica.scrubberMetrics()?.scrubbedCount ?? 0);
    if (this.scrubbedLast >= 0) {
      this.metrics.vsr.scrubThroughputOpsPerSecond.set((scrubbed - this.scrubbedLast) / seconds);
    }
    this.scrubbedLast = scrubbed;
  }

  private bindReplicaGauges(replica: Replica<KernelOutput>): void {
    const vsr = this.metrics.vsr;
    vsr.replicaStatus.bind(() => vsrReplicaStatus[replica.status]);
    vsr.viewNumber.bind(() => replica.view);
    vsr.commitNumber.bind(() => replica.commitMin);
    vsr.opNumber.bind(() => replica.op);
    vsr.logEntries.bind(() => replica.journalOp);
    vsr.quorumSize.bind(() => replica.quorum);
    vsr.clusterSize.bind(() => replica.replicaCount);
    vsr.replicaLagOperations.bind(() => {
      if (replica.status === 'normal' && replica.isPrimary) return 0;
      const leaderOp = Math.max(replica.primaryOpSeen, replica.commitMax);
      return Math.max(0, leaderOp - replica.op);
    });
    vsr.prepareOkVotes.bind(() => replica.prepareOkVotes ?? NaN);
    vsr.clockOffsetSeconds.bind(() => {
      const clock = replica.clockMetrics();
      if (clock === null) return 0;
      if (!clock.synchronized || clock.offsetUs === null) return NaN;
      return appliedClockOffsetUs(clock.offsetUs, clock.intervalWidthUs ?? 0) / 1e6;
    });
    vsr.clientSessionsActive.bind(() => replica.clientTable.size);
    vsr.repairBudgetAvailable.bind(() => replica.repairBudgetMetrics().available);
    vsr.repairInflight.bind(() => replica.repairBudgetMetrics().inflightCount);
  }

  private bindReplicaCounters(replica: Replica<KernelOutput>): void {
    const vsr = this.metrics.vsr;
    const counted = (read: () => number): (() => number) => {
      const accumulated = new Accumulated();
      return () => accumulated.read(read());
    };
    vsr.clockSamples.bind(counted(() => replica.clockMetrics()?.sampleCount ?? 0));
    vsr.clockSyncErrors.bind(counted(() => replica.clockMetrics()?.syncErrorCount ?? 0));
    vsr.duplicateRequests.bind(counted(() => replica.stats.duplicateRequestCount));
    vsr.scrubToursCompleted.bind(counted(() => replica.scrubberMetrics()?.tourCount ?? 0));
    vsr.scrubCorruptionsDetected.bind(
      counted(() => replica.scrubberMetrics()?.corruptionCount ?? 0),
    );
    vsr.repairsFailed.bind(counted(() => replica.repairBudgetMetrics().expiredCount));
  }

  /** Series per peer: repair latency, replication lag, and the cluster's health as seen here. */
  private bindPeers(replica: Replica<KernelOutput>): void {
    const peers: ReplicaIndex[] = [];
    for (let index = 0; index < this.options.replicaCount; index++) {
      if (index !== this.options.nodeId) peers.push(asReplicaIndex(index));
    }
    for (const peer of peers) {
      this.metrics.vsr.repairEwmaLatency(peer).bind(() => {
        const state = replica.repairBudgetMetrics().peers.find((p) => p.peer === peer);
        return state === undefined ? NaN : state.ewmaLatencyUs / 1e6;
      });
      this.metrics.replicationLagSeconds(peer).bind(() => this.replicationLag(replica, peer));
    }
    const healthy = (): number => {
      let count = replica.status === 'normal' ? 1 : 0;
      for (const peer of peers) if (replica.heardRecently(peer)) count += 1;
      return count;
    };
    this.metrics.clusterReplicas.healthy.bind(healthy);
    this.metrics.clusterReplicas.unreachable.bind(() => replica.replicaCount - healthy());
  }

  /**
   * On the leader: how long ago the oldest op of this view that `peer` has not acknowledged was
   * prepared (0 when it acknowledged the head). NaN on other replicas: only the leader knows.
   */
  private replicationLag(replica: Replica<KernelOutput>, peer: ReplicaIndex): number {
    if (replica.status !== 'normal' || !replica.isPrimary) return NaN;
    const acked = replica.ackedOp(peer);
    if (acked >= replica.op || this.viewFirstPreparedOp < 0) return 0;
    const oldest = Math.max(acked + 1, this.viewFirstPreparedOp, replica.op - opRingSize + 1);
    const preparedAt = this.prepared.get(oldest);
    return preparedAt < 0 ? 0 : Math.max(0, nowSeconds() - preparedAt);
  }
}

/**
 * The correction cluster time applies to this replica's wall clock: 0 while the local clock
 * lies inside the quorum's offset interval (it is then as good as any), else the distance to
 * the nearer bound. Not the interval's midpoint: on a busy host round trips are long, the
 * interval is wide, and its midpoint can sit hundreds of ms from a clock that is in fact right.
 */
export function appliedClockOffsetUs(midpointUs: number, widthUs: number): number {
  const lowerUs = midpointUs - widthUs / 2;
  const upperUs = midpointUs + widthUs / 2;
  if (lowerUs > 0) return lowerUs;
  if (upperUs < 0) return upperUs;
  return 0;
}
