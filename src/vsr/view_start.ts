// The end of a view change at its new primary (Viewstamped Replication Revisited §4.2, step 3;
// view_change.ts tells the whole protocol): the log a replica vouches for, as a do_view_change or
// start_view carries it; truncating an adopted op that a nack quorum never saw; and, once the
// adopted log is whole and its log view durable, becoming normal and sending start_view.
//
// It sits below view_change.ts and repair.ts, which both call it (an adopted log, a repaired
// prepare or a nack may complete the view change), and imports neither: src/vsr/ has no import
// cycle (import_cycles.test.ts).
//
// Invariants: the primary becomes normal only with its log whole (verified and journaled up to
// its head, holding every committed op) and the view durable as its log view; an op is truncated
// only when uncommitted, without a prepare anywhere, and a nack quorum never saw it.

import { constants } from '../core/constants.js';
import { asOp } from '../core/types.js';
import type { Op, ReplicaIndex } from '../core/types.js';
import { executeCommitted } from './execute.js';
import type { SuffixEntry } from './message.js';
import { commitPipeline, startPipeline } from './primary.js';
import type { ReplicaCore } from './replica_core.js';
import { transitionToNormal } from './transitions.js';

/** The log this replica vouches for, as a view change carries it; null when too long to vote. */
export function buildSuffix<Output>(
  r: ReplicaCore<Output>,
): { anchorOp: Op; anchorChecksum: Uint8Array; suffix: SuffixEntry[]; op: Op } | null {
  const anchor = r.log.viewChangeAnchor();
  const entries = r.log.contiguousFrom(anchor.op);
  if (entries.length > constants.viewChangeSuffixCountMax) return null;
  let bodiesSizeBytes = 0;
  const suffix = entries.map((entry): SuffixEntry => {
    let prepare = entry.prepare;
    if (prepare !== null) {
      const sizeBytes = bodiesSizeBytes + prepare.body.length;
      if (sizeBytes <= constants.viewChangeBodiesSizeBytesMax) bodiesSizeBytes = sizeBytes;
      else prepare = null;
    }
    return { op: entry.op, checksum: entry.checksum, prepare };
  });
  const op = asOp(anchor.op + entries.length);
  return { anchorOp: anchor.op, anchorChecksum: anchor.checksum, suffix, op };
}

/**
 * Truncates the adopted log before the first op that a nack quorum never saw (it cannot have
 * been committed: no replication quorum holds it), when its prepare is nowhere to be found.
 */
export function applyNackQuorum<Output>(r: ReplicaCore<Output>): void {
  const ops = [...r.vc.nacks.keys()].sort((a, b) => a - b);
  for (const op of ops) {
    const nack = r.vc.nacks.get(op);
    const entry = r.log.get(op);
    if (nack === undefined || entry === undefined) continue;
    if (entry.prepare !== null || entry.journaled || op <= r.commitMax) continue;
    if (nack.notSeen.size < r.nackQuorum) continue;
    const headBefore = r.log.headOp;
    r.log.dropPendingFrom(op);
    for (const key of ops) if (key >= op) r.vc.nacks.delete(key);
    r.stats.truncatedOpCount += headBefore - op + 1;
    r.event({
      kind: 'log_truncated',
      opMax: asOp(op - 1),
      opMaxBefore: headBefore,
      reason: 'nack_quorum',
    });
    return;
  }
}

/** The new primary becomes normal once its log is whole and its log view durable. */
export function maybeFinishPrimaryViewChange<Output>(r: ReplicaCore<Output>): void {
  if (r.status !== 'view_change' || !r.isPrimary || !r.vc.adopted) return;
  const log = r.log;
  if (log.verifiedOp !== log.journalOp || log.journalOp !== log.headOp) return;
  if (r.commitMax > log.journalOp) return;
  if (r.logView !== r.view) {
    r.logView = r.view;
    r.persist();
  }
  if (r.durable.logView !== r.view) return;
  becomeNormalPrimary(r);
}

function becomeNormalPrimary<Output>(r: ReplicaCore<Output>): void {
  transitionToNormal(r);
  executeCommitted(r);
  startPipeline(r);
  sendStartView(r, null, 0);
  r.emit({ kind: 'reads_ready', view: r.view, op: r.op });
  r.event({ kind: 'became_primary', view: r.view, op: r.op, commit: r.commitMax });
  r.event({
    kind: 'view_change_finished',
    oldView: r.vc.oldView,
    view: r.view,
    primary: r.replica,
    op: r.op,
    commit: r.commitMax,
  });
  commitPipeline(r);
}

export function sendStartView<Output>(
  r: ReplicaCore<Output>,
  target: ReplicaIndex | null,
  nonce: number,
) {
  const log = buildSuffix(r);
  if (log === null) return;
  const message = { kind: 'start_view', commitMax: r.commitMax, nonce, ...log } as const;
  if (target === null) r.broadcast(message);
  else r.send(target, message);
}
