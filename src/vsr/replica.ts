// The replica as a pure, deterministic state machine (DESIGN.md §3, HOUSE_RULES §3): Viewstamped
// Replication for 1–6 replicas (quorum: a majority). It is driven only through its entry points,
// each answering with a list of effects for the shell to perform (message.ts says how):
//   onRequest(request)              a client request
//   onMessage(message)              a message from another replica
//   onTick()                        time (ticks; 10 ms in production)
//   onJournalDurable(op, checksum)  a journal_append is written and fdatasynced
//   onJournalRead(op, prepare, ctx) a journal_read completed
//   onSuperblockDurable()           a superblock_write is durable
//   onRecoveredPrepare(prepare)     replaying the journal at start-up, in op order
//   finishRecovery(report)          replay is over
// It never reads a clock, a disk or a socket: wall time and randomness are injected, so the same
// code runs in production and in the simulator. It holds only the log it needs in memory (its
// unexecuted suffix, log_suffix.ts) and asks for older prepares through journal_read.
//
// The protocol lives in one module per concept: primary.ts and backup.ts (normal operation),
// execute.ts (applying commits, the client table), view_change.ts and view_start.ts (electing a
// primary, and its last steps), recovery.ts (restart), repair.ts (missing and corrupt prepares),
// maintenance.ts (ticks, heartbeats, clock, scrubbing), transitions.ts (the statuses and the only
// ways between them). replica_core.ts holds the state they share; they import each other without
// a cycle (import_cycles.test.ts). This class is the only way in.
//
// Invariants (invariants(), after every entry point): commitMin <= commitMax; commitMin <= op;
// the log's own (log_suffix.ts); a normal primary's pipeline is exactly commitMax+1..op and it
// has executed everything committed; a normal replica's log view is its view; the log view never
// passes the view; every pending client request is queued or in the log.

import { assert } from '../core/assert.js';
import { constants } from '../core/constants.js';
import type { Prepare } from '../core/header.js';
import type { Op, ReplicaIndex, View } from '../core/types.js';
import {
  markDurable,
  onCommitMessage,
  onPrepareMessage,
  sendPrepareOk,
  sendPrepareOks,
} from './backup.js';
import type { Request } from './batch.js';
import type { ClientTable } from './client_table.js';
import type { ClockMetrics } from './clock.js';
import type {
  Effect,
  JournalReadContext,
  MessageRejectReason,
  ReplicaMessage,
  ReplicaStatus,
} from './message.js';
import { isPeerView, messageProblem } from './message_bounds.js';
import { onPing, onPong, tick } from './maintenance.js';
import { acknowledge, checkPrimaryQuorum, onRequest } from './primary.js';
import { finishRecovery, onRecoveredPrepare } from './recovery.js';
import type { RecoveryReport } from './recovery.js';
import {
  onJournalRead,
  onNackPrepare,
  onRepairPrepare,
  onRequestPrepare,
  onRequestPrepares,
} from './repair.js';
import type { RepairBudgetMetrics } from './repair_budget.js';
import { ReplicaCore } from './replica_core.js';
import type { ReplicaStats } from './replica_core.js';
import type { ReplicaOptions } from './replica_options.js';
import type { ScrubberMetrics } from './scrubber.js';
import {
  maybeSendDoViewChange,
  onDoViewChange,
  onRequestStartView,
  onStartView,
  onStartViewChange,
} from './view_change.js';
import { maybeFinishPrimaryViewChange } from './view_start.js';

export type { RecoveryReport } from './recovery.js';
export type { Canary, ReplicaOptions, ReplicaPrng, StateMachine } from './replica_options.js';

export class Replica<Output> {
  private readonly r: ReplicaCore<Output>;

  constructor(options: ReplicaOptions<Output>) {
    this.r = new ReplicaCore(options);
  }

  get cluster(): number {
    return this.r.cluster;
  }

  get replica(): ReplicaIndex {
    return this.r.replica;
  }

  get replicaCount(): number {
    return this.r.replicaCount;
  }

  get quorum(): number {
    return this.r.quorum;
  }

  get status(): ReplicaStatus {
    return this.r.status;
  }

  get view(): View {
    return this.r.view;
  }

  /** The last view in which this replica's status was normal. */
  get logView(): View {
    return this.r.logView;
  }

  /** The highest op in this replica's log. */
  get op(): Op {
    return this.r.op;
  }

  /** The head of this replica's journal (ops appended, durable or not). */
  get journalOp(): Op {
    return this.r.log.journalOp;
  }

  /**
   * The highest op known to be committed; at a normal backup, including a commit its primary
   * claimed for ops it has not received yet (so a lagging backup reports its lag).
   */
  get commitMax(): Op {
    return this.r.commitKnown;
  }

  /** The highest op applied to the state machine. */
  get commitMin(): Op {
    return this.r.commitMin;
  }

  /** The checksum of the last op applied to the state machine. */
  get commitMinChecksum(): Uint8Array {
    return this.r.log.baseChecksum;
  }

  get primaryIndex(): ReplicaIndex {
    return this.r.primaryIndex;
  }

  get isPrimary(): boolean {
    return this.r.isPrimary;
  }

  get clientTable(): ClientTable {
    return this.r.clientTable;
  }

  get pipelineLength(): number {
    return this.r.status === 'normal' && this.r.isPrimary ? this.r.pipelineOks.size : 0;
  }

  get queueLength(): number {
    return this.r.queue.length;
  }

  /** Requests accepted and not yet answered (queued or in the pipeline). */
  get pendingRequestCount(): number {
    return this.r.pendingClients.size;
  }

  /** Counters (repair requests, view changes, truncations) for tests and metrics. */
  get stats(): Readonly<ReplicaStats> {
    return this.r.stats;
  }

  /** Committed ops whose journal record this replica found corrupt, not yet repaired. */
  get faultyOpCount(): number {
    return this.r.repair.faulty.size;
  }

  // ----- read-only views for metrics (the shell samples them; none changes state) -----

  /**
   * At a normal primary, the PrepareOk votes (itself included) of the oldest uncommitted op, or
   * those the last op committed in this view had; null elsewhere or before any such op.
   */
  get prepareOkVotes(): number | null {
    const r = this.r;
    if (r.status !== 'normal' || !r.isPrimary) return null;
    return r.pipelineOks.get(r.commitMax + 1)?.size ?? r.lastCommitVotes;
  }

  /** The highest op `replica` acknowledged to this primary in the current view (0: none). */
  ackedOp(replica: ReplicaIndex): number {
    return this.r.ackedOp[replica] ?? 0;
  }

  /** The highest op a prepare from this view's primary carried (backups). */
  get primaryOpSeen(): Op {
    return this.r.primaryOpSeen;
  }

  /** Whether `replica` was heard from, in this view, within an election timeout. */
  heardRecently(replica: ReplicaIndex): boolean {
    const r = this.r;
    return r.ticks - (r.heardTick[replica] ?? 0) <= r.tuning.electionTimeoutTicks;
  }

  /** Clock synchronisation counters and estimate; null without clock sync. */
  clockMetrics(): ClockMetrics | null {
    return this.r.clock?.metrics() ?? null;
  }

  /** The repair budget's counters and per-peer latency. */
  repairBudgetMetrics(): RepairBudgetMetrics {
    return this.r.repair.budget.metrics();
  }

  /** The scrubber's counters; null while there is no scrubber. */
  scrubberMetrics(): ScrubberMetrics | null {
    return this.r.scrubber?.metrics() ?? null;
  }

  /** Replays one durable prepare from the journal at start-up, in op order. */
  onRecoveredPrepare(prepare: Prepare): Effect<Output>[] {
    onRecoveredPrepare(this.r, prepare);
    return this.done();
  }

  /** Ends replay (see RecoveryReport for what the shell must say about its journal). */
  finishRecovery(report: RecoveryReport = {}): Effect<Output>[] {
    finishRecovery(this.r, report);
    return this.done();
  }

  onRequest(request: Request): Effect<Output>[] {
    onRequest(this.r, request);
    return this.done();
  }

  /**
   * A message from a peer. Whatever its fields hold, it is refused (message_rejected) rather
   * than asserted on when its sender, views or ops are out of range (message_bounds.ts).
   */
  onMessage(message: ReplicaMessage): Effect<Output>[] {
    const r = this.r;
    const from = message.replica;
    const valid = Number.isInteger(from) && from >= 0 && from < r.replicaCount;
    let reason: MessageRejectReason | null = null;
    if (!valid || from === r.replica) reason = 'invalid_sender';
    else if (r.canary === 'trust_peer_numbers') reason = null;
    else if (!isPeerView(message.view)) reason = 'view_out_of_range';
    else reason = messageProblem(message);
    if (reason !== null) {
      const claimed = Number.isSafeInteger(from) ? from : null;
      r.event({ kind: 'message_rejected', reason, messageKind: message.kind, from: claimed });
      return this.done();
    }
    if (r.replaying) return this.done();
    // A peer counts as heard (view_follow.ts, the primary's quorum, and so whether it may serve
    // reads) only by its pings and pongs, which every replica sends every heartbeat: anything
    // else could be garbage in its name (a prepare failing its checksums, an op it cannot hold)
    // and would keep a peer that is gone looking alive.
    const liveness = message.kind === 'ping' || message.kind === 'pong';
    if (liveness && message.view === r.view) r.heardTick[from] = r.ticks;
    if (message.view > r.view) {
      r.movedOnTick[from] = r.ticks;
      if (r.status === 'normal' && r.isPrimary) checkPrimaryQuorum(r);
    }
    dispatch(r, message);
    return this.done();
  }

  onTick(): Effect<Output>[] {
    tick(this.r);
    return this.done();
  }

  /** The shell wrote and fdatasynced the journal_append of `op` (this checksum). */
  onJournalDurable(op: Op, checksum: Uint8Array): Effect<Output>[] {
    const r = this.r;
    if (markDurable(r, op, checksum)) {
      if (r.status === 'normal' && r.isPrimary) acknowledge(r, op, checksum, r.replica);
      else sendPrepareOk(r, op, checksum);
    }
    // The journal may now hold the adopted log's anchor durably (ReplicaCore.persistableLogView).
    r.persistLogViewWhenVerified();
    return this.done();
  }

  /** A journal_read completed: the prepare, or null when missing or failing its checksums. */
  onJournalRead(op: Op, prepare: Prepare | null, context: JournalReadContext): Effect<Output>[] {
    assert(this.r.readsInflight > 0, 'a journal read completes once');
    onJournalRead(this.r, op, prepare, context);
    return this.done();
  }

  /** The superblock_write in flight is durable. */
  onSuperblockDurable(): Effect<Output>[] {
    const r = this.r;
    const written = r.superblockWriting;
    assert(written !== null, 'a superblock write was in flight');
    r.durable = written;
    r.superblockWriting = null;
    if (r.superblockWanted) r.writeSuperblock();
    maybeSendDoViewChange(r);
    maybeFinishPrimaryViewChange(r);
    sendPrepareOks(r);
    return this.done();
  }

  /** Checks the replica's invariants; called after every entry point. */
  invariants(): void {
    const r = this.r;
    r.log.check();
    assert(r.commitMin <= r.commitMax, 'commitMin <= commitMax');
    assert(r.logView <= r.view, 'the log view is not after the view');
    assert(r.durable.view <= r.view, 'the durable view is not after the view');
    if (r.status === 'normal') assert(r.logView === r.view, 'a normal replica logs its view');
    if (r.status === 'normal' && r.isPrimary) {
      assert(r.pipelineOks.size === r.op - r.commitMax, 'the pipeline spans the uncommitted');
      assert(r.commitMin === r.commitMax, 'a normal primary executed what it committed');
      assert(r.log.journalOp === r.op, "a normal primary's log is whole");
      assert(r.pipelineOks.size <= constants.viewChangeSuffixCountMax, 'pipeline bound');
    } else {
      assert(r.pipelineOks.size === 0, 'only a normal primary has a pipeline');
    }
    assert(r.queue.length <= r.tuning.requestQueueCountMax, 'request queue bound');
    assert(r.repair.faulty.size <= constants.faultyOpCountMax, 'faulty ops bound');
    assert(r.readsInflight >= 0, 'journal reads in flight');
    // Counting the log's requests walks the log; it is needed only when the queue alone cannot
    // account for every pending client (this runs after every entry point).
    if (r.pendingClients.size > r.queue.length) {
      const requestCount = r.queue.length + r.log.requestCountBetween(r.commitMin, r.op);
      assert(r.pendingClients.size <= requestCount, 'pending requests are queued or in the log');
    }
  }

  private done(): Effect<Output>[] {
    this.invariants();
    return this.r.flush();
  }
}

function dispatch<Output>(r: ReplicaCore<Output>, message: ReplicaMessage): void {
  switch (message.kind) {
    case 'prepare':
      return onPrepareMessage(r, message);
    case 'prepare_ok':
      if (message.view !== r.view) return;
      if (message.op <= r.op) {
        r.ackedOp[message.replica] = Math.max(r.ackedOp[message.replica] ?? 0, message.op);
      }
      acknowledge(r, message.op, message.checksum, message.replica);
      return;
    case 'commit':
      return onCommitMessage(r, message);
    case 'ping':
      return onPing(r, message);
    case 'pong':
      return onPong(r, message);
    case 'start_view_change':
      return onStartViewChange(r, message);
    case 'do_view_change':
      return onDoViewChange(r, message);
    case 'start_view':
      return onStartView(r, message);
    case 'request_start_view':
      return onRequestStartView(r, message);
    case 'request_prepare':
      return onRequestPrepare(r, message);
    case 'request_prepares':
      return onRequestPrepares(r, message);
    case 'repair_prepare':
      return onRepairPrepare(r, message);
    case 'nack_prepare':
      return onNackPrepare(r, message);
  }
}
