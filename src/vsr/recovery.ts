// Restart: the shell replays the journal through onRecoveredPrepare (op order, from op 1), then
// calls finishRecovery. Replay rebuilds the state machine and the client table by executing the
// ops the cluster had declared committed (the commit number each prepare carries, and the
// superblock's); later ops stay in memory as the uncommitted suffix.
//
// With several replicas a restarted replica does not serve, nor trust its view, until the
// cluster tells it the current view: it stays `recovering` and asks every peer with
// request_start_view (and a nonce), which the normal primary answers with start_view. Whether it
// may vote in a view change meanwhile depends on what the shell reports: a journal replayed whole
// (every record it ever acknowledged is still held) lets it vote with that durable state, and
// propose a view change if no primary answers; a journal cut short by corruption does not, since
// the replica may have acknowledged what it lost. A backup with nothing in its journal in view 0
// (and a primary of view 0 whose data directory was just formatted) has nothing to lose and
// starts normal at once.

import { assert } from '../core/assert.js';
import { checksumEqual } from '../core/checksum.js';
import { bodyMatches } from '../core/header.js';
import type { Prepare } from '../core/header.js';
import { Scrubber } from './scrubber.js';
import { executeCommitted } from './execute.js';
import type { ReplicaCore } from './replica_core.js';
import { electionJitter, transitionToNormal, transitionToRecovering } from './transitions.js';

export interface RecoveryReport {
  /**
   * True when the journal was replayed whole: no record the replica may have acknowledged was
   * lost (production: Journal.open verified every record and truncated only a torn, never
   * acknowledged, tail). False when replay stopped early at a corrupt or missing record: the
   * replica then waits for start_view before it takes part in anything. Default false.
   */
  readonly journalIntact?: boolean;
  /**
   * True when this start formatted the data directory: no earlier incarnation of this replica
   * can have sent anything. Only then may the primary of view 0 start serving at once; a
   * restarted primary must never resume its view (backups could mix two logs in one view).
   * Default false.
   */
  readonly formatted?: boolean;
}

export function onRecoveredPrepare<Output>(r: ReplicaCore<Output>, prepare: Prepare): void {
  assert(r.status === 'recovering' && r.replaying, 'replay only while recovering');
  const header = prepare.header;
  assert(header.op === r.log.journalOp + 1, 'replay in op order');
  assert(checksumEqual(header.parent, r.log.journalChecksum), 'replay continues the chain');
  assert(bodyMatches(header, prepare.body), 'replayed body matches its checksum');
  const entry = r.log.appendNext(prepare);
  entry.durable = true;
  r.journalDurableOp = header.op;
  r.lastTimestampUs = Math.max(r.lastTimestampUs, header.timestampUs);
  if (header.view > r.view) r.view = header.view;
  // A single replica's durable prepare is committed (its own fdatasync is the whole quorum).
  if (r.replicaCount === 1) r.commitMax = header.op;
  else if (header.commit > r.commitMax) r.commitMax = header.commit;
  executeCommitted(r);
}

export function finishRecovery<Output>(r: ReplicaCore<Output>, report: RecoveryReport): void {
  assert(r.status === 'recovering' && r.replaying, 'finish recovery once');
  r.replaying = false;
  r.journalIntact = report.journalIntact ?? false;
  startScrubber(r);
  r.heartbeat.start();
  // A backup with nothing in its journal in view 0 holds a prefix of any view-0 log; the
  // primary of view 0 only if it has never run before.
  const empty = r.journalIntact && r.view === 0 && r.log.journalOp === 0 && r.commitMax === 0;
  const fresh = empty && (!r.isPrimary || report.formatted === true);
  if (r.replicaCount === 1 || fresh) {
    // One replica is its own quorum; a fresh one has nothing it could have lost.
    if (r.replicaCount === 1 && r.commitMax > r.log.journalOp) r.commitMax = r.log.journalOp;
    r.logView = r.view;
    executeCommitted(r);
    transitionToNormal(r);
    return;
  }
  transitionToRecovering(r);
  requestStartView(r);
  if (r.journalIntact) r.primaryTimeout.start(electionJitter(r));
}

function requestStartView<Output>(r: ReplicaCore<Output>): void {
  r.broadcast({ kind: 'request_start_view', nonce: r.recoveryNonce });
  r.recoveryTimeout.start();
}

export function onRecoveryTimeout<Output>(r: ReplicaCore<Output>): void {
  if (r.status === 'recovering') requestStartView(r);
}

function startScrubber<Output>(r: ReplicaCore<Output>): void {
  const readsPerTickMax = r.tuning.scrubReadsPerTickMax;
  if (readsPerTickMax === 0) return;
  r.scrubber = new Scrubber({
    random: () => r.random(),
    readsPerTickMax,
    commitMax: r.commitMin,
  });
}
