// The backup's side of normal operation: accepting its primary's prepares in op order into the
// journal, acknowledging each once it is durable, learning the commit number (from the next
// prepare and from commit heartbeats) and executing in order. A prepare that arrives ahead of a
// gap waits in memory (a bounded window) while repair fetches the ops before it.
//
// A message from the primary of a later view moves the backup into that view's view change
// (jumpToView), to ask for its start_view.
//
// A backup acknowledges only while its superblock durably records the current view as its log
// view: a replica that restarts must never claim an older log view for a log holding ops it
// acknowledged in a newer one (see view_change.ts).

import { checksumEqual } from '../core/checksum.js';
import { constants } from '../core/constants.js';
import type { Prepare } from '../core/header.js';
import type { Op, View } from '../core/types.js';
import { executeCommitted } from './execute.js';
import type { ReplicaMessage } from './message.js';
import { prepareIsValid } from './prepare_check.js';
import { scheduleRepair } from './repair.js';
import type { ReplicaCore } from './replica_core.js';
import { electionJitter, transitionToViewChange } from './transitions.js';
import { mayFollowLaterView } from './view_follow.js';

type PrepareMessage = Extract<ReplicaMessage, { kind: 'prepare' }>;
type CommitMessage = Extract<ReplicaMessage, { kind: 'commit' }>;

/**
 * Common handling of a message from a primary (prepare, commit): true when it comes from this
 * replica's primary in its current view while normal, so the caller may act on it.
 */
function fromMyPrimary<Output>(
  r: ReplicaCore<Output>,
  message: PrepareMessage | CommitMessage,
): boolean {
  const { view, replica: from } = message;
  if (view < r.view || r.status === 'recovering') return false;
  if (from !== r.primaryOf(view)) return false;
  if (view > r.view) {
    if (mayFollowLaterView(r, from, message.kind, view)) jumpToView(r, view);
    return false;
  }
  if (r.status !== 'normal') {
    // The view's primary is already normal: this replica missed its start_view.
    r.needStartView = true;
    return false;
  }
  if (r.isPrimary) return false;
  r.primaryTimeout.start(electionJitter(r));
  r.vc.proposedView = null;
  return true;
}

/**
 * A message from the normal primary of a later view: this replica missed that view's start.
 * It moves to the view (without voting in it) and asks the primary for start_view.
 */
function jumpToView<Output>(r: ReplicaCore<Output>, view: View): void {
  if (r.status === 'recovering' || view <= r.view) return;
  const oldView = r.view;
  transitionToViewChange(r, view);
  r.vc.svcView = view;
  r.vc.svcFrom.clear();
  r.needStartView = true;
  r.send(r.primaryOf(view), { kind: 'request_start_view', nonce: 0 });
  r.viewChangeStartedEvent(oldView, 'later_view');
}

export function onPrepareMessage<Output>(r: ReplicaCore<Output>, message: PrepareMessage): void {
  if (!fromMyPrimary(r, message)) return;
  const prepare = message.prepare;
  if (!prepareIsValid(prepare, r.cluster) || prepare.header.view > message.view) {
    r.event({
      kind: 'checksum_failure',
      op: prepare.header.op,
      source: 'message',
      from: message.replica,
    });
    return;
  }
  const header = prepare.header;
  if (header.op > r.primaryOpSeen) r.primaryOpSeen = header.op;
  const journalOp = r.log.journalOp;
  acceptPrepare(r, prepare);
  // Its commit number is about the primary's log: learn it only while ours is a prefix of it.
  if (!r.needStartView) learnCommit(r, header.commit);
  r.appendReady();
  if (r.canary === 'ack_before_fsync') {
    // The canary acknowledges what it just appended, before the write is durable.
    for (const entry of r.log.range(journalOp, r.log.journalOp)) {
      sendPrepareOk(r, entry.op, entry.checksum);
    }
  }
  executeCommitted(r);
  scheduleRepair(r);
}

/** Places a prepare of this view's log: appends it, fills a known op, or waits beyond a gap. */
function acceptPrepare<Output>(r: ReplicaCore<Output>, prepare: Prepare): void {
  const { op, checksum } = prepare.header;
  if (op <= r.commitMin) return;
  const entry = r.log.get(op);
  if (entry !== undefined) {
    if (checksumEqual(entry.checksum, checksum)) {
      if (entry.prepare === null) entry.prepare = prepare;
      if (entry.durable) sendPrepareOk(r, op, checksum);
      return;
    }
    if (entry.trusted) {
      // Another prepare at this op in the same view: this replica's log is not the view's.
      r.needStartView = true;
      return;
    }
    r.log.dropPending(op); // A buffered repair prepare gives way to the primary's.
  }
  if (op <= r.log.journalOp) return;
  const windowEnd = r.log.journalOp + constants.repairRangeCountMax;
  if (op > windowEnd || r.log.full) return; // Repair fetches it later.
  r.log.putPending(op, checksum, prepare, true);
}

export function onCommitMessage<Output>(r: ReplicaCore<Output>, message: CommitMessage): void {
  if (!fromMyPrimary(r, message)) return;
  learnCommit(r, message.commit);
  executeCommitted(r);
  scheduleRepair(r);
}

/**
 * A commit number claimed by this view's primary (a prepare's, or a commit heartbeat's). It is
 * adopted at once when this backup knows the primary holds that op: a prepare of this view
 * carried it (primaryOpSeen), or it is in this replica's verified log. A larger claim is only
 * a hint (commitClaim): repair fetches the ops up to it from the primary, and it is adopted once
 * they arrive (ReplicaCore.settleCommitClaim), or dropped when the primary says it does not hold
 * them (repair.ts). So a forged commit of 10^9 neither executes ops beyond what the primary
 * prepared nor leaves a backup waiting forever for ops that do not exist, and commitMax (which a
 * do_view_change carries to the next primary) never names an op nobody holds.
 */
function learnCommit<Output>(r: ReplicaCore<Output>, claim: Op): void {
  if (claim <= r.commitMax) return;
  if (claim <= Math.max(r.primaryOpSeen, r.log.verifiedOp)) r.commitMax = claim;
  else if (claim > r.commitClaim) r.commitClaim = claim;
}

/** Whether this backup may acknowledge prepares now (see the file comment). */
function mayAcknowledge<Output>(r: ReplicaCore<Output>): boolean {
  return r.status === 'normal' && !r.isPrimary && r.durable.logView === r.view;
}

export function sendPrepareOk<Output>(r: ReplicaCore<Output>, op: Op, checksum: Uint8Array): void {
  if (!mayAcknowledge(r)) return;
  r.send(r.primaryIndex, { kind: 'prepare_ok', op, checksum });
}

/** Acknowledges every durable op of the log (after start_view, once the view is durable). */
export function sendPrepareOks<Output>(r: ReplicaCore<Output>): void {
  if (!mayAcknowledge(r)) return;
  for (const entry of r.log.range(r.commitMin, r.log.journalOp)) {
    if (entry.durable) sendPrepareOk(r, entry.op, entry.checksum);
  }
}

/** The shell finished writing `op`; a backup acknowledges it, a primary counts itself. */
export function markDurable<Output>(r: ReplicaCore<Output>, op: Op, checksum: Uint8Array): boolean {
  const entry = r.log.get(op);
  // Appends complete in op order; an executed op's entry is gone, but the report is for it.
  const ours = entry === undefined ? op <= r.commitMin : checksumEqual(entry.checksum, checksum);
  if (ours && op <= r.log.journalOp && op > r.journalDurableOp) r.journalDurableOp = op;
  if (entry === undefined || !entry.journaled || !checksumEqual(entry.checksum, checksum)) {
    return false; // Executed already, truncated since, or a repaired old record.
  }
  entry.durable = true;
  return true;
}
