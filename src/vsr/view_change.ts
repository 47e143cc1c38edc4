// View change (Viewstamped Replication Revisited §4.2, with TigerBeetle's refinements):
//
// 1. A normal backup (or an intact recovering replica) that hears nothing from its primary for an
//    election timeout proposes view v+1: it sends start_view_change(v+1) but stays in view v until
//    a quorum proposes the same, so one isolated replica cannot disrupt a healthy cluster. A
//    start_view_change for a view beyond v+1, a do_view_change for a later view, or a view change
//    that times out moves a replica to the later view at once.
// 2. In view_change for v, once a quorum of start_view_change(v) is known and view v is durable
//    in the superblock, a replica sends do_view_change(v) to the primary of v: its log (the
//    committed anchor and the hash-chained suffix after it), its last normal view and commit.
// 3. The new primary, on a quorum of do_view_change (its own included), adopts the log with the
//    largest (log view, op), checking its hash chain, and takes the largest commit. It repairs
//    what it lacks (bodies sent only as headers, committed ops it never had); an uncommitted op
//    that a nack quorum never saw is truncated (protocol-aware recovery). When its log is whole
//    it makes the new log view durable, becomes normal and sends start_view.
// 4. A replica adopts a start_view of a later view (or of its own, when it asked for it):
//    it keeps the part of its journal the hash chain proves equal, truncates the uncommitted
//    ops that differ, and repairs the rest.
//
// Step 3's end (nack truncation, becoming normal, start_view) lives in view_start.ts, below this
// module and repair.ts, which both complete it; status changes go through transitions.ts.
//
// Safety rests on: a do_view_change is sent only once its view is durable; a log view is made
// durable before the primary starts the view and before a backup acknowledges in it; a journal
// is truncated only where an op is proven uncommitted (it differs from the committed op, or from
// the op of a log that holds every committed op, or a nack quorum never saw it).

import { assert } from '../core/assert.js';
import { checksumEqual } from '../core/checksum.js';
import { constants } from '../core/constants.js';
import { asOp } from '../core/types.js';
import type { ReplicaIndex, View } from '../core/types.js';
import { sendPrepareOks } from './backup.js';
import { executeCommitted } from './execute.js';
import type { TargetLog } from './log_suffix.js';
import type { ReplicaMessage, SuffixEntry, ViewChangeReason } from './message.js';
import { prepareIsValid } from './prepare_check.js';
import { abandonPrimary } from './primary.js';
import { scheduleRepair } from './repair.js';
import type { DoViewChange, ReplicaCore, StartView } from './replica_core.js';
import { transitionToNormal, transitionToViewChange, viewChangeJitter } from './transitions.js';
import { mayFollowLaterView } from './view_follow.js';
import {
  applyNackQuorum,
  buildSuffix,
  maybeFinishPrimaryViewChange,
  sendStartView,
} from './view_start.js';

type StartViewChangeMessage = Extract<ReplicaMessage, { kind: 'start_view_change' }>;
type RequestStartView = Extract<ReplicaMessage, { kind: 'request_start_view' }>;

function recordStartViewChange<Output>(r: ReplicaCore<Output>, view: View, from: ReplicaIndex) {
  if (r.vc.svcView !== view) {
    r.vc.svcView = view;
    r.vc.svcFrom.clear();
  }
  r.vc.svcFrom.add(from);
}

/** Whether this replica may take part in a view change with what it holds durably. */
function canVote<Output>(r: ReplicaCore<Output>): boolean {
  return r.status !== 'recovering' || r.journalIntact;
}

/** A backup's primary (or a recovering replica's cluster) went silent: propose view + 1. */
export function onPrimaryTimeout<Output>(r: ReplicaCore<Output>): void {
  const normalBackup = r.status === 'normal' && !r.isPrimary;
  const recovering = r.status === 'recovering' && r.journalIntact;
  if (!normalBackup && !recovering) return;
  if (r.view >= constants.viewMax) return; // No view after the last one: never overflow.
  const view = (r.view + 1) as View;
  r.vc.proposedView = view;
  recordStartViewChange(r, view, r.replica);
  r.broadcast({ kind: 'start_view_change' }, view);
  if (r.vc.svcFrom.size >= r.quorum) startViewChange(r, view, 'primary_timeout');
}

export function onStartViewChange<Output>(
  r: ReplicaCore<Output>,
  message: StartViewChangeMessage,
): void {
  const view = message.view;
  if (r.status === 'view_change') {
    if (view < r.view) return;
    if (view > r.view) {
      if (!mayFollowLaterView(r, message.replica, message.kind, view)) return;
      startViewChange(r, view, 'start_view_change');
    }
    recordStartViewChange(r, view, message.replica);
    maybeSendDoViewChange(r);
    return;
  }
  if (view <= r.view || !canVote(r)) return;
  // A healthy replica counts a proposal of the next view toward a quorum, but is not moved any
  // further by one peer (view_follow.ts).
  if (view > r.view + 1 && !mayFollowLaterView(r, message.replica, message.kind, view)) return;
  recordStartViewChange(r, view, message.replica);
  if (view > r.view + 1) {
    startViewChange(r, view, 'start_view_change');
  } else if (r.vc.svcFrom.size >= r.quorum) {
    const proposed = r.vc.proposedView === view;
    startViewChange(r, view, proposed ? 'primary_timeout' : 'start_view_change');
  } else if (primarySilentLong(r)) {
    // Another backup timed out, and this one has not heard from the primary for at least half
    // an election timeout either: its own timeout is evidence enough, so it proposes now rather
    // than at the end of its own randomised timeout. A backup that hears its primary still
    // waits: one flaky backup alone never deposes a primary the others hear.
    onPrimaryTimeout(r);
  }
}

/** A normal backup whose primary has been silent for half an election timeout or more. */
function primarySilentLong<Output>(r: ReplicaCore<Output>): boolean {
  if (r.status !== 'normal' || r.isPrimary || r.vc.proposedView !== null) return false;
  const timeout = r.primaryTimeout;
  return timeout.running && 2 * timeout.elapsedTicks >= r.tuning.electionTimeoutTicks;
}

/** Moves to view_change for `view` (later than the current view) and starts voting for it. */
export function startViewChange<Output>(
  r: ReplicaCore<Output>,
  view: View,
  reason: ViewChangeReason,
): void {
  const oldView = r.view;
  transitionToViewChange(r, view);
  if (r.vc.svcView !== view) r.vc.svcFrom.clear();
  r.vc.svcView = view;
  r.vc.svcFrom.add(r.replica);
  r.broadcast({ kind: 'start_view_change' });
  r.viewChangeStartedEvent(oldView, reason);
  r.stats.viewChangeCount += 1;
  maybeSendDoViewChange(r);
}

export function maybeSendDoViewChange<Output>(r: ReplicaCore<Output>): void {
  if (r.status !== 'view_change' || r.vc.dvcSent || r.needStartView) return;
  if (r.vc.svcFrom.size < r.quorum || r.durable.view < r.view || !canVote(r)) return;
  const log = buildSuffix(r);
  if (log === null) return; // Too far behind to vote: it waits for start_view.
  r.vc.dvcSent = true;
  const primary = r.primaryOf(r.view);
  const message = {
    kind: 'do_view_change',
    logView: r.logView,
    commitMax: r.commitMax,
    ...log,
  } as const;
  if (primary !== r.replica) {
    r.send(primary, message);
    return;
  }
  r.vc.dvcs.set(r.replica, { ...message, replica: r.replica, view: r.view });
  onDoViewChangeQuorum(r);
}

/** Checks a do_view_change or start_view log: bounds, contiguity, the hash chain, each prepare. */
function validLog<Output>(r: ReplicaCore<Output>, message: DoViewChange | StartView): boolean {
  if (message.suffix.length > constants.viewChangeSuffixCountMax) return false;
  if (message.op !== message.anchorOp + message.suffix.length) return false;
  if (message.anchorChecksum.length !== 32 || message.commitMax < 0) return false;
  // A start_view's primary holds every op it calls committed.
  if (message.kind === 'start_view' && message.commitMax > message.op) return false;
  let previous = message.anchorChecksum;
  for (const [index, entry] of message.suffix.entries()) {
    if (entry.op !== message.anchorOp + 1 + index || entry.checksum.length !== 32) return false;
    const prepare = entry.prepare;
    if (prepare !== null) {
      if (!prepareIsValid(prepare, r.cluster)) return false;
      if (!checksumEqual(prepare.header.checksum, entry.checksum)) return false;
      if (prepare.header.op !== entry.op) return false;
      if (!checksumEqual(prepare.header.parent, previous)) return false;
    }
    previous = entry.checksum;
  }
  return true;
}

export function onDoViewChange<Output>(r: ReplicaCore<Output>, message: DoViewChange): void {
  if (message.view < r.view || !canVote(r)) return;
  if (message.view === r.view && r.status !== 'view_change') return;
  if (message.logView > message.view) return;
  if (message.view > r.view) {
    if (!mayFollowLaterView(r, message.replica, message.kind, message.view)) return;
    startViewChange(r, message.view, 'do_view_change');
  }
  recordStartViewChange(r, message.view, message.replica);
  if (r.primaryOf(r.view) === r.replica && !r.vc.adopted) {
    if (validLog(r, message)) r.vc.dvcs.set(message.replica, message);
    else
      r.event({
        kind: 'checksum_failure',
        op: message.op,
        source: 'message',
        from: message.replica,
      });
  }
  maybeSendDoViewChange(r);
  if (r.primaryOf(r.view) === r.replica) onDoViewChangeQuorum(r);
}

/** Orders logs: the largest (log view, op) first; ties by the longer anchor, then replica. */
function better(a: DoViewChange, b: DoViewChange): boolean {
  if (a.logView !== b.logView) return a.logView > b.logView;
  if (a.op !== b.op) return a.op > b.op;
  if (a.anchorOp !== b.anchorOp) return a.anchorOp > b.anchorOp;
  return a.replica < b.replica;
}

function chooseLog(dvcs: readonly DoViewChange[], wrong: boolean): DoViewChange {
  let chosen = dvcs[0];
  for (const dvc of dvcs) {
    if (chosen === undefined) chosen = dvc;
    // The adopt_wrong_log canary picks the worst log instead of the best.
    else if (better(dvc, chosen) !== wrong) chosen = dvc;
  }
  assert(chosen !== undefined, 'a log is chosen from a quorum of logs');
  return chosen;
}

function onDoViewChangeQuorum<Output>(r: ReplicaCore<Output>): void {
  if (r.status !== 'view_change' || r.vc.adopted || !r.vc.dvcs.has(r.replica)) return;
  if (r.vc.dvcs.size < r.quorum) return;
  const dvcs = [...r.vc.dvcs.values()];
  const chosen = chooseLog(dvcs, r.canary === 'adopt_wrong_log');
  // Every committed op is in the chosen log, so no honest commitMax exceeds its op: a larger one
  // could never be reached (the view change would wait for it forever) and is cut to it.
  for (const dvc of dvcs) {
    const commitMax = Math.min(dvc.commitMax, chosen.op);
    if (commitMax > r.commitMax) r.commitMax = asOp(commitMax);
  }
  const suffix = chosen.suffix.map((entry): SuffixEntry => {
    if (entry.prepare !== null) return entry;
    return { ...entry, prepare: bodyFromAny(dvcs, entry) };
  });
  const target = { anchorOp: chosen.anchorOp, anchorChecksum: chosen.anchorChecksum, suffix };
  if (!adoptLog(r, target, chosen.replica)) return; // The view change times out and moves on.
  r.vc.adopted = true;
  // Who is known never to have seen each op adopted without its prepare: the do_view_change
  // senders whose logs do not hold it (an intact replica's log holds every op it acknowledged).
  for (const entry of r.log.range(r.log.journalOp, r.log.headOp)) {
    if (entry.prepare !== null || entry.op <= r.commitMax) continue;
    const notSeen = new Set<ReplicaIndex>();
    for (const dvc of dvcs) if (!logHolds(dvc, entry.op, entry.checksum)) notSeen.add(dvc.replica);
    r.vc.nacks.set(entry.op, { checksum: entry.checksum, notSeen });
  }
  applyNackQuorum(r);
  scheduleRepair(r);
  maybeFinishPrimaryViewChange(r);
}

function bodyFromAny(dvcs: readonly DoViewChange[], entry: SuffixEntry) {
  for (const dvc of dvcs) {
    const found = dvc.suffix.find((e) => e.op === entry.op && e.prepare !== null);
    if (found !== undefined && checksumEqual(found.checksum, entry.checksum)) return found.prepare;
  }
  return null;
}

function logHolds(dvc: DoViewChange, op: number, checksum: Uint8Array): boolean {
  const entry = dvc.suffix.find((e) => e.op === op);
  return entry !== undefined && checksumEqual(entry.checksum, checksum);
}

/** Adopts a view's log; false (with an event) when it contradicts what this replica executed. */
function adoptLog<Output>(r: ReplicaCore<Output>, target: TargetLog, from: ReplicaIndex): boolean {
  const result = r.log.adopt(target);
  if (!result.ok) {
    r.event({ kind: 'log_divergence', op: r.commitMin, from });
    return false;
  }
  if (result.truncatedTo !== null) {
    r.emit({ kind: 'journal_truncate', opMax: result.truncatedTo });
    r.journalTruncated(result.truncatedTo);
    r.stats.truncatedOpCount += result.truncatedFrom - result.truncatedTo;
    r.event({
      kind: 'log_truncated',
      opMax: result.truncatedTo,
      opMaxBefore: result.truncatedFrom,
      reason: 'view_change',
    });
  }
  if (target.anchorOp > r.commitMax) r.commitMax = target.anchorOp;
  r.appendReady();
  return true;
}

export function onRequestStartView<Output>(r: ReplicaCore<Output>, message: RequestStartView) {
  if (r.status !== 'normal' || !r.isPrimary) return;
  if (message.view > r.view) {
    // The asker durably moved to a later view (a view change that never finished) and may not
    // go back: the cluster moves up to it, so that it can rejoin (once it is silent in this
    // view: view_follow.ts).
    if (!mayFollowLaterView(r, message.replica, message.kind, message.view)) return;
    startViewChange(r, message.view, 'later_view');
    return;
  }
  sendStartView(r, message.replica, message.nonce);
}

export function onStartView<Output>(r: ReplicaCore<Output>, message: StartView): void {
  if (message.replica !== r.primaryOf(message.view) || message.view < r.view) return;
  if (message.view === r.view) {
    if (r.status === 'normal' && !r.needStartView) return;
    if (r.status === 'view_change' && r.isPrimary) return;
    if (r.status === 'recovering' && message.nonce !== r.recoveryNonce) return;
  }
  if (!validLog(r, message)) {
    r.event({ kind: 'checksum_failure', op: message.op, source: 'message', from: message.replica });
    return;
  }
  const later = message.view > r.view;
  if (later && !mayFollowLaterView(r, message.replica, message.kind, message.view)) return;
  const wasNormalIn = r.status === 'normal' ? r.view : null;
  const oldView = wasNormalIn ?? (r.status === 'recovering' ? r.logView : r.vc.oldView);
  if (r.status === 'normal' && r.isPrimary) abandonPrimary(r);
  if (!adoptLog(r, message, message.replica)) return;
  r.view = message.view;
  r.logView = message.view;
  if (message.commitMax > r.commitMax) r.commitMax = message.commitMax;
  r.primaryOpSeen = message.op;
  transitionToNormal(r);
  r.persist();
  executeCommitted(r);
  scheduleRepair(r);
  sendPrepareOks(r);
  if (wasNormalIn === message.view) return;
  r.event({
    kind: 'view_change_finished',
    oldView,
    view: r.view,
    primary: message.replica,
    op: r.op,
    commit: r.commitMax,
  });
}

export function onViewChangeTimeout<Output>(r: ReplicaCore<Output>): void {
  if (r.status !== 'view_change') return;
  if (r.needStartView && !r.vc.svcFrom.has(r.replica)) {
    // It jumped into a running view: keep asking rather than disturb it.
    r.send(r.primaryIndex, { kind: 'request_start_view', nonce: 0 });
    r.viewChangeTimeout.start(viewChangeJitter(r));
    return;
  }
  if (r.view >= constants.viewMax) {
    // No view after the last one (never reached in practice: see message_bounds.ts): keep
    // asking for this one rather than overflow.
    r.viewChangeTimeout.start(viewChangeJitter(r));
    return;
  }
  startViewChange(r, (r.view + 1) as View, 'view_change_timeout');
}

/** Every heartbeat: re-send what a lost message would otherwise leave stuck. */
export function viewChangeHeartbeat<Output>(r: ReplicaCore<Output>): void {
  if (r.status === 'view_change') {
    if (r.vc.svcFrom.has(r.replica)) r.broadcast({ kind: 'start_view_change' });
    if (r.vc.dvcSent && !r.isPrimary) {
      r.vc.dvcSent = false;
      maybeSendDoViewChange(r);
    }
  } else if (r.vc.proposedView !== null && !(r.status === 'normal' && r.isPrimary)) {
    // A backup (or recovering replica) still proposing: the proposal may have been lost.
    r.broadcast({ kind: 'start_view_change' }, r.vc.proposedView);
  }
  if (r.needStartView && r.status !== 'recovering') {
    r.send(r.primaryIndex, { kind: 'request_start_view', nonce: 0 });
  }
}
