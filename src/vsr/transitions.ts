// The replica's statuses and the only ways between them. A replica's status changes here and
// nowhere else: one transitionTo… function per status, which asserts that the status it leaves
// may lead to it and does what every entry into that status must do. The protocol modules decide
// when to move (view_change.ts, view_start.ts, backup.ts, recovery.ts) and what to send after.
//
// Statuses (Viewstamped Replication Revisited §4, §4.3; view_change.ts, recovery.ts):
//   recovering   the initial status: replaying the journal, then (with peers) waiting for the
//                cluster's start_view. No way leads back into it without a restart.
//   normal       serving in `view` (as its primary, or as a backup that acknowledges prepares).
//   view_change  electing the primary of `view` and completing its log.
// Legal transitions (from → to), and what takes them:
//   recovering  → recovering   replay is over and the cluster must answer (recovery.ts)
//   recovering  → normal       replay is over for one replica or a fresh one (recovery.ts), or a
//                              start_view (view_change.ts: onStartView)
//   recovering  → view_change  only with an intact journal: a quorum proposes a later view, a
//                              do_view_change of a later view, or its own election timeout
//   normal      → view_change  a later view (start_view_change quorum, do_view_change, a later
//                              view's primary: backup.ts jumpToView, a peer asking to start one)
//   normal      → normal       a backup adopts a start_view (its own view or a later one)
//   view_change → view_change  a later view (the view change timed out, or peers moved on)
//   view_change → normal       a start_view, or as the new primary once its log is whole
//   normal/view_change → recovering   never
// Later issues add rows for state_transfer (a replica too far behind to repair op by op) and
// standby (a non-voting follower); `legalFrom` then fails to typecheck until they are filled in.
//
// Invariants: every transition happens outside replay; the view only grows; a normal replica logs
// its view; entering view_change gives up a normal primary's pipeline and queue (its clients are
// told to retry); entering view_change or normal forgets the previous election and the repairs in
// flight; a normal backup always runs its primary timeout, a replica in view_change its
// view-change timeout.

import { assert } from '../core/assert.js';
import type { View } from '../core/types.js';
import type { ReplicaStatus } from './message.js';
import { abandonPrimary } from './primary.js';
import type { ReplicaCore } from './replica_core.js';

/** For each status, the statuses a replica may enter it from (see the table above). */
export const legalFrom: { readonly [to in ReplicaStatus]: readonly ReplicaStatus[] } = {
  recovering: ['recovering'],
  normal: ['recovering', 'normal', 'view_change'],
  view_change: ['recovering', 'normal', 'view_change'],
};

/** A recovery nonce is drawn from 1..recoveryNonceMax (0 means "not recovering" on the wire). */
const recoveryNonceMax = 0x7fff_fffe;

function assertLegal<Output>(r: ReplicaCore<Output>, to: ReplicaStatus): void {
  assert(legalFrom[to].includes(r.status), `no transition from ${r.status} to ${to}`);
  assert(!r.replaying, 'no transition during replay');
}

/**
 * The extra ticks a backup waits on top of the election timeout, drawn again whenever it hears
 * from its primary: uniform in [0, timeout / 2). Backups that time out together are harmless
 * here (the next view's primary is fixed, view mod n), so the spread only needs to stagger
 * them, and a wider one is paid for in failover time: with [0, timeout) one trial in 20 of
 * bench/failover.ts took over 2 s.
 */
export function electionJitter<Output>(r: ReplicaCore<Output>): number {
  return Math.floor((r.random() * r.tuning.electionTimeoutTicks) / 2);
}

export function viewChangeJitter<Output>(r: ReplicaCore<Output>): number {
  return Math.floor(r.random() * r.tuning.viewChangeTimeoutTicks);
}

/** Forgets the state of an election, a primary's pipeline and repairs in flight. */
function resetElection<Output>(r: ReplicaCore<Output>): void {
  r.vc.proposedView = null;
  r.vc.dvcSent = false;
  r.vc.dvcs.clear();
  r.vc.adopted = false;
  r.vc.nacks.clear();
  r.needStartView = false;
  r.commitClaim = r.commitMax; // Claims were about the old view's primary (backup.ts).
  r.pendingClients.clear();
  r.primaryTimeout.stop();
  r.prepareTimeout.stop();
  r.recoveryTimeout.stop();
  r.repair.budget.clear();
  r.repair.range = null;
  r.repair.prepares.clear();
  r.repair.nackedBy.clear();
}

/**
 * Replay is over and the replica must hear the cluster's view before it serves or votes: it
 * announces `recovering` and draws the nonce its request_start_view messages carry.
 */
export function transitionToRecovering<Output>(r: ReplicaCore<Output>): void {
  assertLegal(r, 'recovering');
  assert(r.replicaCount > 1, 'one replica is its own quorum: it never waits for one');
  r.event({ kind: 'status_changed', status: 'recovering', view: r.view });
  r.recoveryNonce = 1 + Math.floor(r.random() * recoveryNonceMax);
}

/**
 * Enters view_change for `view`, a later view. The caller then counts and sends its
 * start_view_change, or asks the view's primary for start_view (a view it missed the start of).
 */
export function transitionToViewChange<Output>(r: ReplicaCore<Output>, view: View): void {
  assertLegal(r, 'view_change');
  assert(view > r.view, 'a view change moves to a later view');
  // A journal that may have lost acknowledged records must not vote (recovery.ts).
  if (r.status === 'recovering') assert(r.journalIntact, 'only an intact journal votes');
  if (r.status === 'normal') r.vc.oldView = r.view;
  if (r.status === 'recovering') r.vc.oldView = r.logView;
  if (r.status === 'normal' && r.isPrimary) abandonPrimary(r);
  r.view = view;
  resetElection(r);
  r.setStatus('view_change');
  r.viewChangeTimeout.start(viewChangeJitter(r));
  r.persist();
}

/**
 * Enters normal in the current view, which the replica's log now is the log of (the caller set
 * the log view): as the new primary once its adopted log is whole, as a backup that adopted a
 * start_view, or after replay for one replica or a fresh one. The caller then executes, starts
 * the pipeline or acknowledges.
 */
export function transitionToNormal<Output>(r: ReplicaCore<Output>): void {
  assertLegal(r, 'normal');
  assert(r.logView === r.view, 'a normal replica logs its view');
  if (r.status === 'normal') assert(!r.isPrimary, 'only a backup adopts a start_view in normal');
  if (r.isPrimary && r.status === 'view_change') assert(r.vc.adopted, 'the primary adopted a log');
  // Its log is now one the view vouches for: whatever replay lost was repaired or replaced.
  r.journalIntact = true;
  resetElection(r);
  r.viewChangeTimeout.stop();
  if (!r.isPrimary) r.primaryTimeout.start(electionJitter(r));
  r.setStatus('normal');
}
