// Proves that a replica's status changes only along the transitions transitions.ts allows, and
// that each entry does what the status needs. It builds a replica's core directly (three replicas,
// a seeded PRNG), puts it in each status the way the protocol does (recovering: replay over with
// peers to hear from; normal: a fresh backup; view_change: from normal, to a later view), then
// tries every transition: one the table forbids must fail its assertion and leave the status as
// it was, one it allows must be taken. Further cases check the conditions beyond the table (no
// transition during replay, views only grow, a journal that may have lost records never votes)
// and what entering view_change and normal must do (timeouts, the durable view, forgotten
// elections and an abandoned pipeline).

import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { asClientId, asReplicaIndex, asRequestNumber, asView } from '../core/types.js';
import type { View } from '../core/types.js';
import type { ReplicaStatus } from './message.js';
import { finishRecovery } from './recovery.js';
import { ReplicaCore } from './replica_core.js';
import { Counter, seededRandom, testCluster, testRoot } from './testing_harness.test-support.js';
import {
  legalFrom,
  transitionToNormal,
  transitionToRecovering,
  transitionToViewChange,
} from './transitions.js';

const statuses: readonly ReplicaStatus[] = ['recovering', 'normal', 'view_change'];

/** Replica 1 of 3, fresh from its constructor (still replaying), in view 0. */
function newCore(): ReplicaCore<number> {
  const random = seededRandom(7);
  return new ReplicaCore<number>({
    cluster: testCluster,
    replica: asReplicaIndex(1),
    replicaCount: 3,
    stateMachine: new Counter(),
    realtimeUs: () => 0,
    view: asView(0),
    rootChecksum: testRoot,
    prng: { float: random },
  });
}

/** The next view after the current one whose primary is another replica. */
function laterBackupView(r: ReplicaCore<number>): View {
  let view = r.view + 1;
  while (view % r.replicaCount === r.replica) view += 1;
  return asView(view);
}

/** A core in `status`, reached the way the protocol reaches it; effects so far discarded. */
function coreIn(status: ReplicaStatus, journalIntact = true): ReplicaCore<number> {
  const r = newCore();
  if (status === 'recovering') {
    // A restarted replica that has been in view 2: it must hear the cluster before it serves.
    r.view = asView(2);
    r.logView = asView(2);
    finishRecovery(r, { journalIntact });
  } else {
    finishRecovery(r, { journalIntact: true }); // Fresh backup of view 0: normal at once.
    if (status === 'view_change') transitionToViewChange(r, laterBackupView(r));
  }
  assert.equal(r.status, status);
  r.flush();
  return r;
}

/** Attempts the transition to `to` as the protocol would call it. */
function transition(r: ReplicaCore<number>, to: ReplicaStatus): void {
  if (to === 'recovering') transitionToRecovering(r);
  if (to === 'view_change') transitionToViewChange(r, laterBackupView(r));
  if (to === 'normal') {
    // As on start_view: the replica adopts the view's log first.
    r.logView = r.view;
    transitionToNormal(r);
  }
}

describe('replica status transitions', () => {
  for (const from of statuses) {
    for (const to of statuses) {
      const legal = legalFrom[to].includes(from);
      it(`${from} -> ${to} is ${legal ? 'taken' : 'refused'}`, () => {
        const r = coreIn(from);
        if (legal) {
          transition(r, to);
          assert.equal(r.status, to);
        } else {
          assert.throws(() => transition(r, to), /no transition from/);
          assert.equal(r.status, from);
        }
      });
    }
  }

  it('refuses any transition during replay', () => {
    const r = newCore();
    assert.equal(r.replaying, true);
    assert.throws(() => transitionToNormal(r), /during replay/);
    assert.throws(() => transitionToViewChange(r, asView(1)), /during replay/);
  });

  it('moves a view change only to a later view', () => {
    const r = coreIn('normal');
    assert.throws(() => transitionToViewChange(r, r.view), /later view/);
    assert.equal(r.status, 'normal');
  });

  it('lets a recovering replica vote only with an intact journal', () => {
    const lost = coreIn('recovering', false);
    assert.throws(() => transitionToViewChange(lost, asView(4)), /intact journal/);
    const intact = coreIn('recovering', true);
    transitionToViewChange(intact, asView(4));
    assert.equal(intact.vc.oldView, 2, 'the view it was last normal in');
  });

  it('enters view_change with its view durable, the old election forgotten and a timeout', () => {
    const r = coreIn('normal');
    r.vc.proposedView = asView(1);
    r.needStartView = true;
    transitionToViewChange(r, asView(2));
    assert.equal(r.view, 2);
    assert.equal(r.vc.oldView, 0);
    assert.equal(r.vc.proposedView, null);
    assert.equal(r.needStartView, false);
    assert.equal(r.viewChangeTimeout.running, true);
    assert.equal(r.primaryTimeout.running, false, 'no primary to time out while electing');
    const effects = r.flush();
    const kinds = effects.map((e) => (e.kind === 'event' ? e.event.kind : e.kind));
    assert.deepEqual(kinds, ['status_changed', 'superblock_write']);
    const write = effects.find((e) => e.kind === 'superblock_write');
    assert.equal(write?.kind === 'superblock_write' ? write.view : null, 2);
  });

  it('abandons the pipeline and queued clients of a normal primary', () => {
    const r = coreIn('normal');
    r.view = asView(1); // Replica 1 is the primary of view 1.
    r.logView = asView(1);
    assert.equal(r.isPrimary, true);
    const clientId = asClientId('0123456789abcdef0123456789abcdef');
    const requestNumber = asRequestNumber(1);
    r.queue.push({ clientId, requestNumber, operation: 'command', body: Uint8Array.of(1) });
    r.pendingClients.set(clientId, requestNumber);
    r.prepareTimeout.start();
    transitionToViewChange(r, asView(2));
    assert.equal(r.queue.length, 0);
    assert.equal(r.pendingClients.size, 0);
    assert.equal(r.prepareTimeout.running, false);
    const rejects = r.flush().filter((e) => e.kind === 'reject');
    assert.equal(rejects.length, 1, 'the queued client hears it must retry');
    assert.equal(rejects[0]?.kind === 'reject' ? rejects[0].clientId : null, clientId);
  });

  it('enters normal as a backup with its journal trusted and its primary timed', () => {
    const r = coreIn('recovering', false);
    assert.equal(r.recoveryNonce > 0, true, 'recovering draws a nonce');
    r.view = asView(5);
    r.logView = asView(5);
    transitionToNormal(r);
    assert.equal(r.journalIntact, true);
    assert.equal(r.primaryTimeout.running, true);
    assert.equal(r.viewChangeTimeout.running, false);
    assert.equal(r.recoveryTimeout.running, false, 'it stops asking for start_view');
    const events = r.flush().flatMap((e) => (e.kind === 'event' ? [e.event] : []));
    assert.deepEqual(events, [{ kind: 'status_changed', status: 'normal', view: 5 }]);
  });

  it('refuses normal while the log view lags the view, and a primary without an adopted log', () => {
    const r = coreIn('view_change');
    assert.throws(() => transitionToNormal(r), /logs its view/);
    r.view = asView(4); // Replica 1 is the primary of view 4.
    r.logView = asView(4);
    assert.throws(() => transitionToNormal(r), /adopted a log/);
    r.vc.adopted = true;
    transitionToNormal(r);
    assert.equal(r.status, 'normal');
    assert.equal(r.primaryTimeout.running, false, 'a primary times out no primary');
  });
});

describe('who changes the status', () => {
  it('only transitions.ts calls setStatus; only replica_core.ts assigns the field', async () => {
    // Proves the transitionTo… functions are the only way in: a call of setStatus or an
    // assignment of `.status` anywhere else in src/vsr (tests aside) fails here, naming the file.
    const { readdir, readFile } = await import('node:fs/promises');
    const dir = new URL('.', import.meta.url);
    const offenders: string[] = [];
    for (const name of await readdir(dir)) {
      if (!name.endsWith('.ts') || name.includes('.test')) continue;
      const text = await readFile(new URL(name, dir), 'utf8');
      if (name !== 'transitions.ts' && name !== 'replica_core.ts' && /\.setStatus\(/.test(text)) {
        offenders.push(`${name} calls setStatus`);
      }
      if (name !== 'replica_core.ts' && /\.status\s*=[^=]/.test(text)) {
        offenders.push(`${name} assigns .status`);
      }
    }
    assert.deepEqual(offenders, []);
  });
});
