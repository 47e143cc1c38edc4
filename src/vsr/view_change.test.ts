// Scenario tests of view change and restart: a primary crashing mid-pipeline, a primary cut off
// from its backups, exactly-once across a view change, replicas restarting (alone, two at once,
// with a journal cut short), and protocol-aware truncation of an uncommitted op. Each runs in
// the deterministic harness and ends with the safety checks.

import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { errorCodes } from '../core/errors.js';
import type { ReplicaMessage } from './message.js';
import { Scenario } from './testing_harness.test-support.js';

function statuses(t: Scenario): string {
  return t.nodes
    .map((n) =>
      n.alive ? `${n.index}:${n.r.status}@${n.r.view}/${n.r.commitMin}` : `${n.index}:down`,
    )
    .join(' ');
}

for (const replicaCount of [3, 5]) {
  describe(`view change, ${replicaCount} replicas`, () => {
    it('survives the primary crashing with a full pipeline of uncommitted prepares', () => {
      // Proves that prepares acknowledged by backups survive their primary: the primary's disk
      // and enough backups' disks are stalled that the acknowledging backups are one short of a
      // quorum, so nothing commits while they hold a pipeline of prepares; the primary crashes,
      // the stalled disks recover, a quorum elects a new primary, which adopts those prepares and
      // commits them; every client is answered exactly once.
      const t = new Scenario({ replicaCount, pipeline: 4 });
      const quorum = Math.floor(replicaCount / 2) + 1;
      const stalled = Array.from({ length: replicaCount - quorum }, (_, i) => replicaCount - 1 - i);
      const clients = Array.from({ length: 6 }, () => t.client().register());
      t.runUntil(() => clients.every((c) => c.idle), 'registers');
      for (const index of [0, ...stalled]) t.replica(index).node.syncStalled = true;
      clients.forEach((c, i) => c.command(i + 1));
      t.settle();
      assert.equal(t.replica(0).r.pipelineLength, 4, 'a full pipeline');
      assert.equal(t.replica(1).r.journalOp, t.replica(0).r.op, 'backups hold it');
      const committedBefore = t.replica(1).r.commitMax;
      t.replica(0).crash();
      for (const index of stalled) t.replica(index).node.syncStalled = false;
      t.runUntil(() => clients.every((c) => c.idle), 'every client answered', 3_000);
      const primary = t.primary();
      assert.ok(primary !== null && primary.index !== 0, statuses(t));
      assert.ok(primary.r.commitMin > committedBefore + 4, 'the old pipeline committed');
      assert.equal(primary.machine.total, 21, 'each command applied once');
      assert.ok(primary.eventsOf('became_primary').length === 1);
      t.expectSafe();
    });

    it("commits on the backups' durable copies while the primary's own write lags", () => {
      // Proves the primary does not wait for its own fdatasync when a quorum of backups has
      // the op durable (its write and theirs run in parallel): with the primary's disk stalled,
      // commands still commit and are answered; the primary then crashes with those ops not
      // durable on its own disk, the backups elect a new primary, and every acknowledged
      // command is still there, applied once (expectSafe compares acknowledged with committed).
      const t = new Scenario({ replicaCount });
      const c = t.client().register();
      t.runUntil(() => c.idle, 'registers');
      t.replica(0).node.syncStalled = true;
      c.command(3).command(4);
      t.runUntil(() => c.idle, "answered without the primary's own fsync", 500);
      const primaryDisk = t.replica(0).node.storage;
      const commit = t.replica(0).r.commitMax;
      assert.equal(primaryDisk.slots.get(commit)?.durable, false, 'committed before its own sync');
      t.replica(0).crash();
      c.command(5);
      t.runUntil(() => c.idle, 'answered by the new primary', 3_000);
      const primary = t.primary();
      assert.ok(primary !== null && primary.index !== 0, statuses(t));
      assert.equal(primary.machine.total, 12, 'each command applied once');
      t.expectSafe();
    });

    it('elects a new primary when the old one is partitioned away; clients follow', () => {
      // Proves: a primary cut off from every backup keeps its status but commits nothing and,
      // after an election timeout, refuses requests with NOT_READY (its quorum_changed data
      // effect, which the read index acts on, reports the loss); the majority elects a new
      // primary, which reports reads_ready for its view; clients time out and find it; when the
      // partition heals the old primary learns the new view, truncates its uncommitted ops and
      // answers NOT_LEADER with the new leader.
      const t = new Scenario({ replicaCount });
      const c = t.client().register().command(1);
      t.runUntil(() => c.idle, 'warm up');
      t.replica(0).isolate();
      c.command(2);
      t.run(5);
      assert.equal(t.replica(0).r.op, 3, 'the isolated primary prepared it');
      assert.equal(t.replica(0).r.commitMax, 2, 'but cannot commit it');
      // The data effect the read index acts on (quorum_changed), not its telemetry twin.
      const lost = () => t.replica(0).node.quorumChanges.some((q) => q.view === 0 && !q.reachable);
      t.runUntil(lost, 'quorum lost');
      assert.equal(t.replica(0).node.eventsOf('primary_quorum').length, 1, 'and its event');
      assert.equal(t.replica(0).r.status, 'normal', 'it keeps its status');
      const late = t.client();
      late.register();
      t.settle();
      assert.equal(late.rejects[0], errorCodes.not_ready);
      t.runUntil(() => c.idle && late.idle, 'clients served by the new primary', 3_000);
      const primary = t.primary();
      assert.ok(primary !== null && primary.index !== 0 && primary.r.view >= 1, statuses(t));
      assert.equal(primary.readsReadyView, primary.r.view, 'it may serve reads in its view');
      assert.ok(primary.readsReadyOp <= primary.r.commitMin, 'once it executed the view start');
      t.heal();
      t.runUntil(() => t.replica(0).r.status === 'normal' && !t.replica(0).r.isPrimary, 'rejoin');
      const truncated = t.replica(0).node.eventsOf('log_truncated');
      assert.ok(
        truncated.some((e) => e.opMax === 2),
        'its view-0 op 3 was cut',
      );
      const stray = t.client();
      stray.register();
      t.runUntil(() => stray.idle, 'a request sent to the old primary');
      assert.equal(stray.rejects[0], errorCodes.not_leader);
      t.run(30);
      t.expectCommitted(t.primary()?.r.commitMin ?? 0);
      t.expectSafe();
    });

    it('keeps exactly-once across a view change when the reply is lost', () => {
      // Proves the client table is replicated state: a request committed by the old primary,
      // whose reply was lost, is retried against the new primary, which answers from its client
      // table (or when the adopted op commits) and never applies it twice.
      const t = new Scenario({ replicaCount });
      const c = t.client().register();
      t.runUntil(() => c.idle, 'register');
      c.dropReplies = 1;
      c.command(9);
      t.settle(); // The old primary commits and replies (lost); backups do not know it yet.
      assert.equal(t.replica(0).r.commitMin, 2);
      t.replica(0).crash();
      t.runUntil(() => c.idle, 'the retry is answered', 3_000);
      assert.deepEqual(
        c.replies.map((r) => [r.requestNumber, r.op]),
        [
          [0, 1],
          [1, 2],
        ],
      );
      t.run(30);
      for (const node of t.nodes.filter((n) => n.alive)) assert.equal(node.machine.total, 9);
      t.expectSafe();
    });
  });
}

describe('restart', () => {
  it('a restarted backup asks for the view before serving, and catches up', () => {
    // Proves the recovery handshake: after replaying its journal a replica of a cluster is
    // recovering, refuses clients (NOT_READY), sends request_start_view with a nonce, and
    // becomes normal once the primary answers with start_view.
    const t = new Scenario({ replicaCount: 3 });
    const c = t.client().register().command(1);
    t.runUntil(() => c.idle, 'warm up');
    t.replica(2).crash();
    c.command(2);
    t.runUntil(() => c.idle, 'commit without it');
    t.recordSent = true;
    t.replica(2).restart();
    const r = t.replica(2).r;
    assert.equal(r.status, 'recovering');
    const asked = t.sent.filter((s) => s.from === 2 && s.message.kind === 'request_start_view');
    assert.equal(asked.length, 2, 'it asks every peer');
    t.runUntil(() => r.status === 'normal', 'start_view');
    t.run(30);
    t.expectCommitted(3);
    t.expectSafe();
  });

  for (const replicaCount of [3, 5]) {
    it(`${replicaCount} replicas: two replicas (the primary among them) restart at once`, () => {
      // Proves that replicas whose journals replayed whole may vote with their durable state:
      // with the primary and a backup down, the rest cannot elect alone when they are no
      // majority; after both restart the cluster elects a primary and every acknowledged write
      // is still there.
      const t = new Scenario({ replicaCount });
      const c = t.client().register();
      for (let i = 1; i <= 10; i++) c.command(1);
      t.runUntil(() => c.idle, 'warm up');
      t.replica(0).crash();
      t.replica(1).crash();
      t.run(200);
      if (replicaCount === 3) assert.equal(t.primary(), null, 'one replica cannot elect');
      t.replica(0).restart();
      t.replica(1).restart();
      c.command(5);
      t.runUntil(() => c.idle, 'progress after the restarts', 3_000);
      t.run(50);
      for (const node of t.nodes) assert.equal(node.machine.total, 15, statuses(t));
      t.expectSafe();
    });
  }

  it('a restarted primary never resumes its view, even with an empty journal', () => {
    // Proves a primary that restarts does not serve its old view again: the backups hold its
    // earlier prepares, so a second incarnation preparing other ops at the same numbers in the
    // same view would split them. It waits (recovering) while the others elect a new primary,
    // which keeps the prepares the backups acknowledged.
    const t = new Scenario({ replicaCount: 3 });
    t.replica(0).node.syncStalled = true;
    const c = t.client().register();
    t.settle();
    assert.equal(t.replica(1).r.journalOp, 1, 'the backups hold op 1');
    t.replica(0).crash().restart();
    assert.equal(t.replica(0).r.journalOp, 0, 'its own copy of op 1 was never durable');
    assert.equal(t.replica(0).r.status, 'recovering', 'view 0, empty journal, yet not fresh');
    c.command(4);
    t.runUntil(() => c.idle, 'the client is served in a new view', 3_000);
    assert.ok((t.primary()?.r.view ?? 0) >= 1);
    t.run(30);
    t.expectCommitted(2);
    for (const node of t.nodes) assert.equal(node.machine.total, 4);
    t.expectSafe();
  });

  it('persists a new log view only once its journal is verified to belong to that view', () => {
    // Proves the superblock never claims a log view for a journal that may still hold another
    // view's ops: replica 2 adopts start_view anchored beyond an op it holds but has not yet
    // matched (repair answers are withheld). Its log view is the new view in memory, the old one
    // on disk; a restart then claims the old one. Once repair verifies the op, the new log view
    // is persisted.
    const t = new Scenario({ replicaCount: 3 });
    const c = t.client().register().command(1).command(1);
    t.runUntil(() => c.idle, 'warm up');
    t.run(20); // Everyone has executed ops 1..3.
    c.command(1);
    t.settle(); // Replica 2 holds op 4; it does not know it committed.
    t.replica(2).isolate();
    for (let i = 0; i < 5; i++) c.command(1);
    t.runUntil(() => c.idle, 'more work without replica 2');
    t.replica(0).crash().restart();
    t.runUntil(() => t.primary() !== null && t.primary()?.r.view === 1, 'view 1');
    t.tamper = ({ message, to }) =>
      to === 2 && message.kind === 'repair_prepare' ? null : message;
    t.heal();
    t.runUntil(() => t.replica(2).r.status === 'normal' && t.replica(2).r.view === 1, 'adopts');
    const r2 = t.replica(2);
    assert.equal(r2.r.logView, 1);
    assert.equal(r2.node.storage.superblock.view, 1);
    assert.equal(r2.node.storage.superblock.logView, 0, 'not yet claimed on disk');
    r2.crash().restart();
    assert.equal(r2.r.logView, 0);
    t.tamper = null;
    t.runUntil(() => r2.r.commitMin === t.replica(1).r.commitMin, 'verified and caught up');
    t.run(5);
    assert.equal(r2.node.storage.superblock.logView, 1, 'claimed once verified');
    t.expectSafe();
  });

  it('a replica whose journal was cut short never votes until start_view', () => {
    // Proves a restarted replica does not vote with state it may have lost: its replay stopped
    // at a corrupt record, so it may have acknowledged ops it no longer holds. It sends neither
    // start_view_change nor do_view_change, and rejoins only through start_view.
    const t = new Scenario({ replicaCount: 3 });
    const c = t.client().register();
    for (let i = 1; i <= 5; i++) c.command(1);
    t.runUntil(() => c.idle, 'warm up');
    t.replica(2).crash().corrupt(3).restart();
    t.recordSent = true;
    t.replica(0).crash();
    t.run(400);
    const votes = t.sent.filter(
      (s) =>
        s.from === 2 &&
        (s.message.kind === 'start_view_change' || s.message.kind === 'do_view_change'),
    );
    assert.deepEqual(votes, [], 'the damaged replica never voted');
    assert.equal(t.primary(), null, 'so one good replica cannot elect');
    t.replica(0).restart();
    c.command(1);
    t.runUntil(() => c.idle, 'progress once the primary is back', 3_000);
    t.runUntil(() => t.replica(2).r.status === 'normal', 'start_view reaches it');
    t.run(50);
    t.expectCommitted(7);
    assert.equal(t.replica(2).node.storage.read(3, null) !== null, true, 'op 3 repaired');
    t.expectSafe();
  });
});

describe('protocol-aware recovery', () => {
  it('truncates an uncommitted op only after a nack quorum never saw it', () => {
    // Proves the PAR rule: the new primary adopts a log whose newest op arrived as a header only
    // (its only holder lost the body and crashed). Asking peers, it counts who never saw it:
    // itself alone is not enough (nack quorum 2 of 3), so the view change waits; once the third
    // replica answers not_seen, the op is truncated and the view starts without it.
    const t = new Scenario({ replicaCount: 3 });
    const c = t.client().register().command(1);
    t.runUntil(() => c.idle, 'warm up'); // ops 1..2 everywhere
    t.replica(0).isolate();
    const lost = t.client();
    lost.register();
    t.settle();
    assert.equal(t.replica(0).r.op, 3, 'op 3 only on the old primary');
    t.replica(0).crash();
    t.partition([0, 1], [2]);
    // Replica 0 has lost the body of op 3: its do_view_change carries the header only, and it
    // cannot answer for it.
    t.tamper = ({ message }): ReplicaMessage | null => {
      if (message.replica !== 0) return message;
      if (message.kind === 'repair_prepare' && message.prepare.header.op === 3) return null;
      if (message.kind !== 'do_view_change') return message;
      const suffix = message.suffix.map((e) => (e.op === 3 ? { ...e, prepare: null } : e));
      return { ...message, suffix };
    };
    t.replica(0).restart();
    t.runUntil(() => t.replica(1).node.eventsOf('view_change_started').length > 0, 'election');
    t.runUntil(() => t.replica(1).r.op === 3, 'replica 1 adopts the header-only op 3');
    t.replica(0).crash(); // The only copy of op 3's body is gone for good.
    t.run(40);
    const waiting = t.replica(1).r;
    assert.equal(waiting.status, 'view_change', 'one not_seen (its own) is not a quorum');
    assert.equal(waiting.op, 3);
    assert.equal(t.replica(1).node.eventsOf('log_truncated').length, 0);
    t.heal();
    t.runUntil(() => t.replica(1).r.status === 'normal', 'the view starts', 400);
    const truncated = t.replica(1).node.eventsOf('log_truncated');
    assert.deepEqual(
      truncated.map((e) => [e.reason, e.opMax]),
      [['nack_quorum', 2]],
    );
    c.command(1);
    t.runUntil(() => c.idle, 'new work commits at op 3');
    t.expectSafe();
  });
});
