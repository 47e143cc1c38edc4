// Scenario tests of normal operation: acknowledgement after durability, exactly-once through the
// client table, admission errors, batching, bounded sessions, replay after a restart, and the
// quorum rule with 1, 3 and 5 replicas. The harness (testing_harness.test-support.ts) plays the
// shell deterministically, so every scenario replays exactly; each test ends with the safety
// checks (one committed history, every acknowledged request in it, nothing applied twice).

import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { errorCodes } from '../core/errors.js';
import { asClientId, asRequestNumber } from '../core/types.js';
import { Scenario } from './testing_harness.test-support.js';

describe('replica, one replica', () => {
  it('replies only after the prepare is durable', () => {
    // Proves acknowledgement waits for the journal: with the disk stalled nothing is answered;
    // once the write is synced the reply comes, and the state machine applied the command.
    const t = new Scenario({ replicaCount: 1 });
    const c = t.client().register();
    t.runUntil(() => c.idle, 'register');
    t.replica(0).node.syncStalled = true;
    c.command(5);
    t.run(20);
    assert.equal(c.replies.length, 1, 'only the register is answered');
    assert.equal(t.replica(0).node.machine.total, 0);
    t.replica(0).node.syncStalled = false;
    t.runUntil(() => c.idle, 'the command');
    assert.equal(t.replica(0).node.machine.total, 5);
    t.expectSafe();
  });

  it('answers a duplicate from the client table without applying it again', () => {
    // Proves exactly-once: a retried committed request gets the cached reply, applied once.
    const t = new Scenario({ replicaCount: 1 });
    const c = t.client().register().command(7);
    t.runUntil(() => c.idle, 'commands');
    const r = t.replica(0).r;
    const duplicate = {
      clientId: c.id,
      requestNumber: asRequestNumber(1),
      operation: 'command' as const,
      body: Uint8Array.of(7, 1),
    };
    const effects = r.onRequest(duplicate);
    assert.deepEqual(
      effects.map((e) => e.kind),
      ['reply'],
    );
    assert.equal(t.replica(0).node.machine.applyCount, 1);
    assert.equal(r.op, 2);
    t.expectSafe();
  });

  it('rejects unregistered, stale and out-of-order requests with stable codes', () => {
    // Proves session checks answer with codes instead of applying anything.
    const t = new Scenario({ replicaCount: 1 });
    const r = t.replica(0).r;
    const id = asClientId('9'.padStart(32, '0'));
    const command = (n: number) => ({
      clientId: id,
      requestNumber: asRequestNumber(n),
      operation: 'command' as const,
      body: Uint8Array.of(1, n),
    });
    const codeOf = (effects: ReturnType<typeof r.onRequest>) =>
      effects.map((e) => (e.kind === 'reject' ? e.code : e.kind));
    assert.deepEqual(codeOf(r.onRequest(command(1))), [errorCodes.session_not_registered]);
    const register = { ...command(0), operation: 'register' as const, body: new Uint8Array() };
    t.replica(0).node.driver.request(register);
    t.settle();
    assert.deepEqual(codeOf(r.onRequest(command(3))), [errorCodes.request_gap]);
    t.replica(0).node.driver.request(command(1));
    // 1 in flight: the next one is told to retry (in a cluster, 1 may have committed in another
    // view and still be on its way here); one further ahead is a client error.
    assert.deepEqual(codeOf(r.onRequest(command(2))), [errorCodes.not_ready]);
    assert.deepEqual(codeOf(r.onRequest(command(3))), [errorCodes.request_gap]);
    t.settle();
    assert.deepEqual(codeOf(r.onRequest(command(0))), [errorCodes.request_stale]);
    assert.equal(t.replica(0).node.machine.applyCount, 1);
  });

  it('batches queued requests into one prepare when the pipeline is full', () => {
    // Proves batching: with a pipeline of one, requests that arrive during a write share the
    // next prepare, and all are applied in arrival order.
    const t = new Scenario({ replicaCount: 1, pipeline: 1 });
    const clients = Array.from({ length: 20 }, () => t.client());
    t.replica(0).node.syncStalled = true;
    for (const c of clients) c.register();
    assert.equal(t.replica(0).r.op, 1, 'one prepare in flight');
    assert.equal(t.replica(0).r.queueLength, 19);
    t.replica(0).node.syncStalled = false;
    t.runUntil(() => clients.every((c) => c.idle), 'registers');
    assert.equal(t.replica(0).r.op, 2, 'the 19 queued requests shared one prepare');
    assert.equal(t.replica(0).r.clientTable.size, 20);
    t.expectSafe();
  });

  it('evicts the least recently committed session past the bound, deterministically', () => {
    // Proves the client table is bounded and that eviction is reported to the evicted client.
    const t = new Scenario({ replicaCount: 1, sessions: 2 });
    const [a, b, c] = [t.client(), t.client(), t.client()];
    a.register();
    b.register();
    t.runUntil(() => a.idle && b.idle, 'registers');
    a.command(1);
    t.runUntil(() => a.idle, 'a command');
    c.register();
    t.runUntil(() => c.idle, 'third register');
    assert.ok(b.rejects.length === 0);
    b.command(1);
    t.runUntil(() => b.idle, 'b gives up');
    assert.deepEqual(b.rejects, [errorCodes.session_not_registered]);
    assert.ok(t.replica(0).node.events.some((e) => e.kind === 'session_evicted'));
  });

  it('rebuilds state and sessions by replaying its journal', () => {
    // Proves restart: replaying the durable prepares restores the state machine and the client
    // table, so a duplicate sent after the restart still gets its cached reply, and the next
    // prepare continues the hash chain with a later timestamp.
    const t = new Scenario({ replicaCount: 1 });
    const c = t.client().register().command(3);
    t.runUntil(() => c.idle, 'commands');
    t.replica(0).crash().restart();
    const r = t.replica(0).r;
    assert.equal(r.status, 'normal');
    assert.equal(t.replica(0).node.machine.total, 3);
    assert.equal(r.op, 2);
    const duplicate = {
      clientId: c.id,
      requestNumber: asRequestNumber(1),
      operation: 'command' as const,
      body: Uint8Array.of(3, 1),
    };
    assert.deepEqual(
      r.onRequest(duplicate).map((e) => e.kind),
      ['reply'],
    );
    c.command(4);
    t.runUntil(() => c.idle, 'after restart');
    assert.equal(t.replica(0).node.machine.total, 7);
    const slots = t.replica(0).node.storage.slots;
    assert.ok(
      (slots.get(3)?.prepare.header.timestampUs ?? 0) >
        (slots.get(2)?.prepare.header.timestampUs ?? 0),
    );
    t.expectSafe();
  });
});

for (const replicaCount of [3, 5]) {
  describe(`replica, ${replicaCount} replicas (normal operation)`, () => {
    it('commits only with a quorum, and backups apply the same commands', () => {
      // Proves the quorum rule: with all but a minority of backups cut off, nothing commits;
      // with a quorum reachable everything does, and every replica converges on the same state.
      const t = new Scenario({ replicaCount });
      const quorum = Math.floor(replicaCount / 2) + 1;
      const c = t.client().register();
      t.runUntil(() => c.idle, 'register');
      // The primary plus quorum - 2 backups: one short of a quorum.
      const short = Array.from({ length: quorum - 1 }, (_, i) => i);
      const rest = Array.from({ length: replicaCount - short.length }, (_, i) => i + short.length);
      t.partition(short, rest);
      c.command(2);
      t.run(30);
      assert.equal(c.replies.length, 1, 'no quorum, no commit');
      t.heal();
      t.runUntil(() => c.idle, 'the command commits once healed');
      for (let n = 1; n <= 5; n++) c.command(n);
      t.runUntil(() => c.idle, 'more commands');
      t.run(30); // Commit heartbeats reach every backup.
      for (const node of t.nodes) {
        assert.equal(node.machine.total, 17, `replica ${node.index} applied everything`);
        assert.equal(node.r.commitMin, 7);
      }
      t.expectSafe();
    });

    it('refuses requests on a backup with the leader as a hint, and clients follow it', () => {
      // Proves a backup never prepares and tells the client where the leader is.
      const t = new Scenario({ replicaCount });
      const c = t.client();
      c.target = 1;
      c.register();
      t.runUntil(() => c.idle, 'register through the hint');
      assert.deepEqual(c.rejects, [errorCodes.not_leader]);
      assert.equal(t.replica(1).r.op, 1);
      t.expectSafe();
    });
  });
}

describe('replica, clock synchronisation', () => {
  it('timestamps with the time a quorum of clocks agrees on, not a primary clock an hour off', () => {
    // Proves the clock.ts integration: with clockSync the primary prepares nothing until a
    // quorum of clocks (sampled through ping/pong) agrees; its own wall clock is an hour fast,
    // yet every committed timestamp lies within the agreed tolerance of true time, stays
    // monotonic, and the offset is reported as an event.
    const t = new Scenario({ replicaCount: 3, clockSync: true, clockOffsetsUs: [3_600_000_000] });
    const c = t.client().register();
    t.run(100);
    assert.equal(t.replica(0).r.op, 0, 'no quorum agreement yet: nothing is timestamped');
    t.runUntil(() => c.idle, 'the register commits once clocks agree', 2_000);
    for (let i = 1; i <= 5; i++) c.command(1);
    t.runUntil(() => c.idle, 'commands');
    const slots = t.replica(0).node.storage.slots;
    let previous = 0;
    for (let op = 1; op <= 6; op++) {
      const timestampUs = slots.get(op)?.prepare.header.timestampUs ?? 0;
      assert.ok(Math.abs(timestampUs - t.realtimeUs()) < 1_000_000, `op ${op} near true time`);
      assert.ok(timestampUs > previous, 'monotonic');
      previous = timestampUs;
    }
    const offsets = t.replica(0).node.eventsOf('clock_offset');
    assert.ok(offsets.some((e) => e.synchronized && (e.offsetUs ?? 0) < -3_000_000_000));
    t.expectSafe();
  });
});
