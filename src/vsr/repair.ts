// Repair: getting the prepares this replica lacks, or holds corrupt, from its peers.
//
// What is repaired, in order of the log:
//   - ranges (request_prepares): ops a replica is behind on (committed ops it never received, a
//     gap before its primary's latest prepare) and its own journal ops not yet verified against a
//     newly adopted log. One range of up to constants.repairRangeCountMax ops is in flight; the
//     peer answers with one repair_prepare per op it can vouch for, so a replica far behind
//     catches up in a few round trips per thousand ops, not one per op;
//   - single ops by checksum (request_prepare): uncommitted ops of an adopted log that arrived
//     as headers only, and committed ops whose journal record is corrupt. A peer answers with the
//     prepare or nack_prepare(not_seen | seen_but_corrupt). A new primary asks every peer and
//     truncates an op a nack quorum never saw (view_start.ts: applyNackQuorum).
// Peers are chosen by the repair budget (repair_budget.ts: latency EWMA, in-flight cap, expiry,
// a share of random choices); committed ops may come from anyone, uncommitted ones only from the
// primary of the same view.
//
// Vouching: a replica sends a prepare for repair only if it is the committed one at its op (the
// sender executed it) or, in the same view while normal, the op of that view's log. A receiver
// accepts a prepare at an op whose checksum it knows only with that checksum, and one it does
// not know only if vouched for and continuing its hash chain.

import { checksumEqual } from '../core/checksum.js';
import { constants } from '../core/constants.js';
import type { Prepare } from '../core/header.js';
import { asOp } from '../core/types.js';
import type { Op, ReplicaIndex } from '../core/types.js';
import { executeCommitted } from './execute.js';
import type { JournalReadContext, NackReason, ReplicaMessage } from './message.js';
import { prepareIsValid } from './prepare_check.js';
import type { ReplicaCore } from './replica_core.js';
import { applyNackQuorum, maybeFinishPrimaryViewChange } from './view_start.js';

type RepairPrepare = Extract<ReplicaMessage, { kind: 'repair_prepare' }>;
type NackPrepare = Extract<ReplicaMessage, { kind: 'nack_prepare' }>;
type RequestPrepare = Extract<ReplicaMessage, { kind: 'request_prepare' }>;
type RequestPrepares = Extract<ReplicaMessage, { kind: 'request_prepares' }>;

/** Request ids for the repair budget: even for single ops, odd for ranges (by first op). */
const prepareId = (op: number): number => op * 2;
const rangeId = (op: number): number => op * 2 + 1;

/** Sends whatever repair requests are due; called after every change and every tick. */
export function scheduleRepair<Output>(r: ReplicaCore<Output>): void {
  if (r.replicaCount === 1 || r.replaying || r.status === 'recovering') return;
  expireRequests(r);
  requestRange(r);
  requestPrepares(r);
}

function expireRequests<Output>(r: ReplicaCore<Output>): void {
  r.repair.budget.onTick(r.monotonicUs());
  const timeoutTicks = r.tuning.repairTimeoutTicks;
  const range = r.repair.range;
  if (range !== null && r.ticks - range.progressTick > timeoutTicks) r.repair.range = null;
  for (const [op, request] of r.repair.prepares) {
    if (r.ticks - request.sentTick > timeoutTicks) r.repair.prepares.delete(op);
  }
  // Peers that could not serve a range may have caught up since: ask them again in a while.
  if (r.repair.nackedBy.size > 0 && r.ticks - r.repair.nackedTick > timeoutTicks) {
    r.repair.nackedBy.clear();
  }
}

/** The last op of the next range to ask for, starting at `from`; null when none is needed. */
function rangeLast<Output>(r: ReplicaCore<Output>, from: number): number | null {
  let need: number = r.commitMax;
  const normalBackup = r.status === 'normal' && !r.isPrimary;
  if (normalBackup) need = Math.max(need, r.primaryOpSeen, r.commitClaim);
  if (from > need) return null;
  let last = Math.min(need, from + constants.repairRangeCountMax - 1);
  if (from <= r.commitMax && last > r.commitMax) last = r.commitMax; // Committed ops first.
  // Stop before ops already held beyond the journal.
  for (let op = Math.max(from, r.log.journalOp + 1); op <= last; op++) {
    if ((r.log.get(op)?.prepare ?? null) !== null) {
      last = op - 1;
      break;
    }
  }
  return last >= from ? last : null;
}

function requestRange<Output>(r: ReplicaCore<Output>): void {
  if (r.repair.range !== null) return;
  const from = asOp(r.log.verifiedOp + 1);
  const last = rangeLast(r, from);
  if (last === null) return;
  if (r.repair.nackedOp !== from) {
    r.repair.nackedOp = from;
    r.repair.nackedBy.clear();
  }
  const normalBackup = r.status === 'normal' && !r.isPrimary;
  let candidates: ReplicaIndex[];
  if (last <= r.commitMax) candidates = r.otherReplicas();
  else candidates = normalBackup ? [r.primaryIndex] : [];
  candidates = candidates.filter((peer) => !r.repair.nackedBy.has(peer));
  const id = rangeId(from);
  const peer = r.repair.budget.choosePeer(candidates, id);
  if (peer === null) return;
  r.repair.budget.onRequestSent(peer, id, r.monotonicUs());
  const opLast = asOp(last);
  r.repair.range = { peer, opFirst: from, opLast, id, progressTick: r.ticks, answered: false };
  r.send(peer, { kind: 'request_prepares', opFirst: from, opLast });
  r.stats.rangeRequestCount += 1;
  r.event({ kind: 'repair_requested', request: 'range', opFirst: from, opLast, target: peer });
}

/** The single ops to ask for by checksum: header-only uncommitted ops, corrupt committed ones. */
function wantedPrepares<Output>(r: ReplicaCore<Output>): { op: Op; checksum: Uint8Array | null }[] {
  const wanted: { op: Op; checksum: Uint8Array | null }[] = [];
  const adopting = r.status === 'view_change' && r.vc.adopted;
  if (adopting || r.status === 'normal') {
    const beyond = r.status === 'normal' ? Math.max(r.commitMax, r.primaryOpSeen) : r.commitMax;
    for (const entry of r.log.range(r.log.journalOp, r.log.headOp)) {
      if (entry.prepare === null && entry.op > beyond) {
        wanted.push({ op: entry.op, checksum: entry.checksum });
      }
    }
  }
  for (const [op, checksum] of r.repair.faulty) {
    if (!r.repair.learning.has(op)) wanted.push({ op: asOp(op), checksum });
  }
  return wanted;
}

function requestPrepares<Output>(r: ReplicaCore<Output>): void {
  const broadcast = r.status === 'view_change' && r.vc.adopted;
  for (const { op, checksum } of wantedPrepares(r)) {
    if (r.repair.prepares.size >= constants.repairPrepareInflightMax) return;
    if (r.repair.prepares.has(op)) continue;
    const id = prepareId(op);
    if (broadcast && op > r.commitMax) {
      r.repair.prepares.set(op, { peer: null, id, sentTick: r.ticks });
      r.broadcast({ kind: 'request_prepare', op, checksum });
      r.stats.prepareRequestCount += 1;
      continue;
    }
    const peer = r.repair.budget.choosePeer(r.otherReplicas(), id);
    if (peer === null) return;
    r.repair.budget.onRequestSent(peer, id, r.monotonicUs());
    r.repair.prepares.set(op, { peer, id, sentTick: r.ticks });
    r.send(peer, { kind: 'request_prepare', op, checksum });
    r.stats.prepareRequestCount += 1;
    r.event({
      kind: 'repair_requested',
      request: 'prepare',
      opFirst: op,
      opLast: op,
      target: peer,
    });
  }
}

/** Books an answer (prepare or nack) from `from` about `op` against the requests in flight. */
function noteAnswer<Output>(r: ReplicaCore<Output>, from: ReplicaIndex, op: number, nack: boolean) {
  const nowUs = r.monotonicUs();
  const range = r.repair.range;
  if (range !== null && range.peer === from && op >= range.opFirst && op <= range.opLast) {
    if (!range.answered) r.repair.budget.onResponse(from, range.id, nowUs);
    range.answered = true;
    range.progressTick = r.ticks;
    if (nack && op === range.opFirst) {
      r.repair.range = null;
      if (r.repair.nackedBy.size === 0) r.repair.nackedTick = r.ticks;
      r.repair.nackedBy.add(from);
    }
  }
  const request = r.repair.prepares.get(op);
  if (request !== undefined && request.peer === from) {
    r.repair.budget.onResponse(from, request.id, nowUs);
    r.repair.prepares.delete(op);
  }
}

export function onRepairPrepare<Output>(r: ReplicaCore<Output>, message: RepairPrepare): void {
  const prepare = message.prepare;
  noteAnswer(r, message.replica, prepare.header.op, false);
  const checked = r.canary === 'skip_repair_checksum' || prepareIsValid(prepare, r.cluster);
  if (!checked) {
    r.event({
      kind: 'checksum_failure',
      op: prepare.header.op,
      source: 'message',
      from: message.replica,
    });
    return;
  }
  if (r.status === 'recovering' || r.replaying) return;
  if (prepare.header.op <= r.commitMin) {
    rewriteFaulty(r, message);
    return;
  }
  const how = placeRepaired(r, message);
  // This view's primary holds what it sends: a commit it claimed up to here may be adopted.
  const fromPrimary = message.replica === r.primaryIndex && message.view === r.view;
  if (how !== null && fromPrimary && r.status === 'normal' && !r.isPrimary) {
    if (prepare.header.op > r.primaryOpSeen) r.primaryOpSeen = prepare.header.op;
  }
  r.persistLogViewWhenVerified();
  if (how !== null) {
    r.stats.repairedCount += 1;
    r.event({ kind: 'repair_completed', op: prepare.header.op, from: message.replica, how });
  }
  if ((r.log.get(prepare.header.op)?.prepare ?? null) !== null) {
    r.repair.prepares.delete(prepare.header.op);
  }
  r.appendReady();
  executeCommitted(r);
  const range = r.repair.range;
  if (range !== null && r.log.verifiedOp >= range.opLast) r.repair.range = null;
  scheduleRepair(r);
  maybeFinishPrimaryViewChange(r);
}

/** Where a repaired prepare goes in this replica's log, if anywhere. */
function placeRepaired<Output>(
  r: ReplicaCore<Output>,
  message: RepairPrepare,
): 'append' | 'verify' | null {
  const log = r.log;
  const { op, checksum } = message.prepare.header;
  const vouched = message.committed || (message.view === r.view && r.status === 'normal');
  if (op <= log.journalOp) {
    // This replica's own op, not yet verified against the log it adopted.
    if (op !== log.verifiedOp + 1 || !vouched) return null;
    const own = log.get(op);
    if (own !== undefined && checksumEqual(own.checksum, checksum)) {
      log.verifyThrough(op);
      return 'verify';
    }
    truncateDiverged(r, asOp(op - 1));
  }
  const entry = log.get(op);
  if (entry !== undefined) {
    if (!checksumEqual(entry.checksum, checksum)) return null;
    if (entry.prepare === null) entry.prepare = message.prepare;
    return 'append';
  }
  if (!vouched || op > log.journalOp + constants.repairRangeCountMax || log.full) return null;
  // A normal primary's log is whole: no honest peer vouches for an op beyond it in its view
  // (forged_repair.test.ts), and its pipeline must stay exactly its uncommitted ops.
  if (r.status === 'normal' && r.isPrimary) return null;
  if (op === log.journalOp + 1 && log.verifiedOp !== log.journalOp) return null;
  log.putPending(op, checksum, message.prepare, false);
  return 'append';
}

/** This replica's ops after `opMax` differ from the committed ones: they were never committed. */
function truncateDiverged<Output>(r: ReplicaCore<Output>, opMax: Op): void {
  const before = r.log.journalOp;
  r.log.truncateJournal(opMax);
  r.emit({ kind: 'journal_truncate', opMax });
  r.journalTruncated(opMax);
  r.stats.truncatedOpCount += before - opMax;
  r.event({ kind: 'log_truncated', opMax, opMaxBefore: before, reason: 'divergence' });
}

/** A repaired copy of a committed op whose journal record is corrupt: write it back. */
function rewriteFaulty<Output>(r: ReplicaCore<Output>, message: RepairPrepare): void {
  const prepare = message.prepare;
  const op = prepare.header.op;
  if (!r.repair.faulty.has(op) || r.repair.learning.has(op)) return;
  const expected = r.repair.faulty.get(op) ?? null;
  const matches =
    expected === null ? message.committed : checksumEqual(expected, prepare.header.checksum);
  if (!matches) return;
  r.repair.faulty.delete(op);
  r.journalAppend(prepare);
  r.stats.repairedCount += 1;
  r.event({ kind: 'repair_completed', op, from: message.replica, how: 'rewrite' });
}

export function onNackPrepare<Output>(r: ReplicaCore<Output>, message: NackPrepare): void {
  noteAnswer(r, message.replica, message.op, true);
  dropUnreachableClaim(r, message);
  const counting = r.status === 'view_change' && r.isPrimary && r.vc.adopted;
  // A peer still in an earlier view might yet accept the op there: only later views count.
  if (counting && message.reason === 'not_seen' && message.view >= r.view) {
    const nack = r.vc.nacks.get(message.op);
    const entry = r.log.get(message.op);
    const sameOp = message.checksum !== null && nack !== undefined && entry?.prepare === null;
    if (sameOp && checksumEqual(nack.checksum, message.checksum)) {
      nack.notSeen.add(message.replica);
      applyNackQuorum(r);
      maybeFinishPrimaryViewChange(r);
    }
  }
  scheduleRepair(r);
}

/**
 * This view's primary cannot vouch for an op its commit claim covers: it does not hold it, so the
 * claim was not its own (forged, or from an older incarnation). Dropping it is safe (commitMax
 * is untouched) and the real primary repeats its true commit every heartbeat.
 */
function dropUnreachableClaim<Output>(r: ReplicaCore<Output>, message: NackPrepare): void {
  if (r.status !== 'normal' || r.isPrimary || message.replica !== r.primaryIndex) return;
  if (message.view !== r.view || message.checksum !== null) return;
  if (message.op <= r.commitMax || message.op > r.commitClaim) return;
  r.commitClaim = r.commitMax;
  r.event({
    kind: 'message_rejected',
    reason: 'commit_unreachable',
    messageKind: 'commit',
    from: null,
  });
}

function nack<Output>(
  r: ReplicaCore<Output>,
  target: ReplicaIndex,
  op: Op,
  checksum: Uint8Array | null,
  reason: NackReason,
): void {
  r.send(target, { kind: 'nack_prepare', op, checksum, reason });
}

function sendRepair<Output>(r: ReplicaCore<Output>, target: ReplicaIndex, prepare: Prepare) {
  const committed = prepare.header.op <= r.commitMin;
  r.send(target, { kind: 'repair_prepare', prepare, committed });
}

/** A peer asks for ops opFirst..opLast: send each this replica can vouch for, in op order. */
export function onRequestPrepares<Output>(r: ReplicaCore<Output>, message: RequestPrepares) {
  const { opFirst, opLast } = message;
  if (opFirst < 1 || opLast < opFirst) return;
  if (opLast - opFirst >= constants.repairRangeCountMax) return;
  const sameView = message.view === r.view && r.status === 'normal';
  const vouchMax = sameView ? r.log.verifiedOp : r.commitMin;
  if (opFirst > vouchMax) {
    nack(r, message.replica, opFirst, null, 'not_seen');
    return;
  }
  const last = Math.min(opLast, vouchMax);
  for (let op = opFirst; op <= last; op++) {
    const prepare = r.log.get(op)?.prepare ?? null;
    if (op > r.commitMin && prepare !== null) {
      sendRepair(r, message.replica, prepare);
      continue;
    }
    if (!r.canRead) return; // The requester asks again for the rest.
    const context = { kind: 'serve', replica: message.replica, checksum: null, range: true };
    r.journalRead(asOp(op), null, context as JournalReadContext);
  }
}

/** A peer asks for the prepare at op with this checksum (null: the committed one). */
export function onRequestPrepare<Output>(r: ReplicaCore<Output>, message: RequestPrepare) {
  const { op, checksum } = message;
  if (op < 1) return;
  const entry = r.log.get(op);
  if (entry !== undefined) {
    if (checksum === null) return; // Not executed here: this replica cannot vouch it committed.
    if (!checksumEqual(entry.checksum, checksum) || entry.prepare === null) {
      // It holds another prepare at op, or only this one's checksum: it never accepted it.
      nack(r, message.replica, op, checksum, 'not_seen');
    } else {
      sendRepair(r, message.replica, entry.prepare);
    }
    return;
  }
  if (op <= r.commitMin) {
    if (!r.canRead) return;
    const context = { kind: 'serve', replica: message.replica, checksum, range: false } as const;
    r.journalRead(op, null, context);
    return;
  }
  // Beyond this replica's log. A replica whose journal may have lost records stays silent: it
  // may have accepted the op before its restart.
  if (r.journalIntact) nack(r, message.replica, op, checksum, 'not_seen');
}

export function onJournalRead<Output>(
  r: ReplicaCore<Output>,
  op: Op,
  read: Prepare | null,
  context: JournalReadContext,
): void {
  r.readsInflight -= 1;
  const prepare = read !== null && read.header.op === op ? read : null;
  switch (context.kind) {
    case 'serve':
      serveRead(r, op, prepare, context);
      return;
    case 'scrub':
      scrubRead(r, op, prepare);
      return;
    case 'checksum_of':
      r.repair.learning.delete(context.op);
      if (prepare !== null && r.repair.faulty.has(context.op)) {
        r.repair.faulty.set(context.op, prepare.header.parent);
      }
      scheduleRepair(r);
      return;
  }
}

function serveRead<Output>(
  r: ReplicaCore<Output>,
  op: Op,
  prepare: Prepare | null,
  context: Extract<JournalReadContext, { kind: 'serve' }>,
): void {
  if (prepare === null) {
    markFaulty(r, op);
    if (!context.range) nack(r, context.replica, op, context.checksum, 'seen_but_corrupt');
    return;
  }
  const checksum = context.checksum;
  if (checksum !== null && !checksumEqual(prepare.header.checksum, checksum)) {
    nack(r, context.replica, op, checksum, 'not_seen');
    return;
  }
  sendRepair(r, context.replica, prepare);
}

function scrubRead<Output>(r: ReplicaCore<Output>, op: Op, prepare: Prepare | null): void {
  const scrubber = r.scrubber;
  if (scrubber === null) return;
  const outcome = scrubber.onReadResult(op, prepare !== null);
  if (outcome.repairOp !== null) markFaulty(r, outcome.repairOp);
  if (outcome.repairOp === null && !outcome.tourCompleted) return;
  const metrics = scrubber.metrics();
  r.event({
    kind: 'scrub_progress',
    tourCount: metrics.tourCount,
    scrubbedCount: metrics.scrubbedCount,
    corruptionCount: metrics.corruptionCount,
    corruptOp: outcome.repairOp,
  });
}

/**
 * A committed op's journal record is missing or corrupt: remember it for repair, with the
 * checksum it must have when this replica can tell (from memory, or from the next record's
 * parent, read from the journal).
 */
export function markFaulty<Output>(r: ReplicaCore<Output>, op: Op): void {
  if (op > r.commitMin || op < 1 || r.repair.faulty.has(op)) return;
  r.event({ kind: 'checksum_failure', op, source: 'journal', from: null });
  if (r.repair.faulty.size >= constants.faultyOpCountMax) return;
  let checksum: Uint8Array | null = null;
  if (op === r.commitMin) checksum = r.log.baseChecksum;
  else checksum = r.log.get(op + 1)?.prepare?.header.parent ?? null;
  r.repair.faulty.set(op, checksum);
  if (checksum === null && op + 1 <= r.log.journalOp && r.canRead) {
    r.repair.learning.add(op);
    r.journalRead(asOp(op + 1), null, { kind: 'checksum_of', op });
  }
  scheduleRepair(r);
}
