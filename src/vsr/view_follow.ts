// When a replica follows a peer into a later view ("sticky views", issue 14). Without it, one
// start_view_change, do_view_change or request_start_view naming a later view moved a healthy
// replica into a view change at once, so that a peer (or anything posing as one) could depose a
// healthy primary again and again: 33 forged messages caused 20 elections in 10 s.
//
// The rule, by status:
//   normal, view healthy   follow only a peer that has been silent in this view for an election
//                          timeout, and at most once per constants.viewFollowIntervalElectionTimeouts
//                          election timeouts;
//   view_change            follow to view + 1 once this view change has run for half an election
//                          timeout (the next election, when this one stalls); otherwise, and
//                          further, at most once per that interval;
//   otherwise              (normal with a silent primary or no quorum, recovering) at once.
// Healthy means, for a backup, that it heard from its primary within an election timeout; for a
// primary, that it heard from a quorum (itself included) within one. The interval is what stops a
// stranger posing as a replica that is down (it is silent too): without it each forged proposal
// would cost an election, and during a view change each one would restart the election.
//
// Safety: VSR is safe whatever the timing of view changes; refusing or delaying a move to a later
// view is the same as losing the message, which the protocol tolerates. Nothing here changes what
// a replica votes for or adopts, only when it starts a view change.
//
// Liveness: a real replica that is ahead (it moved to a later view that never started, say during
// a partition, and may never go back) sends nothing in this replica's view, so within an election
// timeout it is "silent" and the cluster follows it, at the cost of one view change, as before.
// A real peer that is not ahead keeps talking in the current view (pings every heartbeat), so a
// message forged in its name cannot pass this rule while its link is up. A quorum of
// start_view_change for view + 1 still starts a view change (view_change.ts counts them). A
// primary that leaves its view is no exception: its backups stop hearing it in their view and
// follow within an election timeout, as they would if it had crashed. The interval only delays:
// a second real reason to follow within it waits for the interval's end (or, in normal status,
// for the view to stop being healthy), and a view change meanwhile still advances by itself, one
// view per view-change timeout, and follows view + 1 from its peers.

import { constants } from '../core/constants.js';
import type { ReplicaIndex } from '../core/types.js';
import type { ReplicaCore } from './replica_core.js';

/** Whether `replica` was heard from, in this replica's view, within an election timeout. */
export function heardRecently<Output>(r: ReplicaCore<Output>, replica: ReplicaIndex): boolean {
  return r.ticks - (r.heardTick[replica] ?? 0) <= r.tuning.electionTimeoutTicks;
}

/** Whether this replica's view is healthy: its primary, or a quorum, was heard recently. */
export function viewHealthy<Output>(r: ReplicaCore<Output>): boolean {
  if (r.status !== 'normal') return false;
  if (!r.isPrimary) return heardRecently(r, r.primaryIndex);
  let heard = 1;
  for (const other of r.otherReplicas()) if (heardRecently(r, other)) heard += 1;
  return heard >= r.quorum;
}

/**
 * Whether this replica may follow `from` into `view` (later than its own) now; when not, it
 * reports the refusal (message_rejected, view_change_refused) and the caller ignores the message.
 * Following under the interval starts the interval again.
 */
export function mayFollowLaterView<Output>(
  r: ReplicaCore<Output>,
  from: ReplicaIndex,
  messageKind:
    | 'start_view_change'
    | 'do_view_change'
    | 'start_view'
    | 'request_start_view'
    | 'prepare'
    | 'commit',
  view: number,
): boolean {
  const healthy = viewHealthy(r);
  if (r.status === 'recovering' || (r.status === 'normal' && !healthy)) return true;
  const stalled = 2 * r.viewChangeTimeout.elapsedTicks >= r.tuning.electionTimeoutTicks;
  if (r.status === 'view_change' && view === r.view + 1 && stalled) return true;
  const intervalTicks =
    constants.viewFollowIntervalElectionTimeouts * r.tuning.electionTimeoutTicks;
  const silent = !healthy || !heardRecently(r, from);
  if (silent && r.ticks - r.viewFollowTick >= intervalTicks) {
    r.viewFollowTick = r.ticks;
    return true;
  }
  r.event({ kind: 'message_rejected', reason: 'view_change_refused', messageKind, from });
  return false;
}
