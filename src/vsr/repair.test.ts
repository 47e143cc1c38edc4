// Scenario tests of repair: a corrupt committed record found by the scrubber and repaired from a
// peer by its checksum; a backup left behind by a partition catching up in bulk ranges; a
// replica 100,000 ops behind catching up in a few hundred round trips; a tampered repair message
// refused. Each runs in the deterministic harness and ends with the safety checks.

import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { checksumEqual } from '../core/checksum.js';
import { constants } from '../core/constants.js';
import type { ReplicaMessage } from './message.js';
import { Scenario } from './testing_harness.test-support.js';

describe('repair', () => {
  it('repairs a corrupt committed record by its checksum, found by the scrubber', () => {
    // Proves the corrupt-prepare path: a bit flips in a backup's journal record of a committed
    // op; the scrubber's read fails its checksums; the replica learns the checksum the record
    // must have (from the next record's parent), asks a peer for exactly that prepare, and
    // writes it back; the record is whole again and identical to the peers'.
    const t = new Scenario({ replicaCount: 3, scrubReadsPerTickMax: 4 });
    const c = t.client().register();
    for (let i = 1; i <= 12; i++) c.command(1);
    t.runUntil(() => c.idle, 'warm up');
    t.run(20);
    t.replica(2).corrupt(5);
    assert.equal(t.replica(2).node.storage.read(5, null), null);
    t.runUntil(() => t.replica(2).node.storage.read(5, null) !== null, 'the record is repaired');
    const node = t.replica(2).node;
    const failures = node.eventsOf('checksum_failure');
    assert.ok(failures.some((e) => e.op === 5 && e.source === 'journal'));
    const rewrites = node.eventsOf('repair_completed').filter((e) => e.how === 'rewrite');
    assert.deepEqual(
      rewrites.map((e) => e.op),
      [5],
    );
    const mine = node.storage.read(5, null);
    const theirs = t.replica(0).node.storage.read(5, null);
    assert.ok(mine !== null && theirs !== null);
    assert.ok(checksumEqual(mine.header.checksum, theirs.header.checksum));
    assert.ok(node.eventsOf('scrub_progress').some((e) => e.corruptOp === 5));
    assert.equal(t.replica(2).r.faultyOpCount, 0);
    t.expectSafe();
  });

  it('a backup cut off by a partition catches up in bulk ranges once it heals', () => {
    // Proves bulk catch-up of a normal backup: it learns the commit number from heartbeats and
    // asks for ranges of up to repairRangeCountMax ops, answered one prepare each, instead of
    // one round trip per op.
    const t = new Scenario({ replicaCount: 3, pipeline: 8 });
    const clients = Array.from({ length: 8 }, () => t.client().register());
    t.runUntil(() => clients.every((c) => c.idle), 'registers');
    t.replica(2).isolate();
    for (let round = 0; round < 100; round++) for (const c of clients) c.command(1);
    t.runUntil(() => clients.every((c) => c.idle), 'commands without replica 2', 10_000);
    const behind = t.replica(0).r.commitMin - t.replica(2).r.commitMin;
    assert.ok(behind >= 500, `behind by ${behind}`);
    t.heal();
    t.runUntil(() => t.replica(2).r.commitMin === t.replica(0).r.commitMin, 'caught up');
    const ranges = t.replica(2).r.stats.rangeRequestCount;
    assert.ok(ranges <= Math.ceil(behind / constants.repairRangeCountMax) + 2, `${ranges}`);
    assert.equal(t.replica(2).node.machine.total, 800);
    t.expectSafe();
  });

  it('a replica 100,000 ops behind catches up in bulk, counting the round trips', () => {
    // Proves bulk repair at scale: two replicas hold a committed history of 100,000 ops; the
    // third has nothing. After a view change it adopts start_view (anchored 100,000 ops ahead)
    // and fetches the ops by ranges: about 100,000 / 256 round trips, not 100,000. Its memory
    // stays bounded: it holds only its unexecuted suffix (checked by the log's invariants).
    const opCount = 100_000;
    const t = new Scenario({ replicaCount: 3 });
    for (const index of [0, 1]) t.replica(index).crash();
    const c = t.seedHistory(opCount, [0, 1]);
    for (const index of [0, 1]) t.replica(index).restart(true);
    t.runUntil(() => t.primary() !== null, 'a primary');
    t.runUntil(() => t.replica(2).r.commitMin === opCount, 'caught up', 10_000);
    const stats = t.replica(2).r.stats;
    const rangesExpected = Math.ceil(opCount / constants.repairRangeCountMax);
    assert.ok(stats.rangeRequestCount >= rangesExpected, `${stats.rangeRequestCount}`);
    assert.ok(stats.rangeRequestCount <= rangesExpected + 10, `${stats.rangeRequestCount}`);
    assert.equal(stats.prepareRequestCount, 0, 'no op was fetched alone');
    assert.equal(t.replica(2).node.machine.total, opCount - 1);
    c.command(1);
    t.runUntil(() => c.idle, 'new work after the catch-up');
    t.run(30);
    t.expectCommitted(opCount + 1);
    t.expectSafe();
  });

  it('refuses a repair prepare whose body does not match its checksum', () => {
    // Proves repair checks what it accepts: a repair_prepare whose body was altered in flight
    // is dropped (a checksum failure is reported) and the op is fetched again, intact.
    const t = new Scenario({ replicaCount: 3 });
    const c = t.client().register();
    t.runUntil(() => c.idle, 'register');
    t.replica(2).isolate();
    for (let i = 1; i <= 20; i++) c.command(1);
    t.runUntil(() => c.idle, 'commands without replica 2');
    let tampered = 0;
    t.tamper = ({ message, to }): ReplicaMessage => {
      if (to !== 2 || message.kind !== 'repair_prepare' || message.prepare.header.op !== 5) {
        return message;
      }
      if (tampered++ > 0) return message;
      const body = message.prepare.body.slice();
      body[body.length - 2] = 9; // The command's value.
      return { ...message, prepare: { ...message.prepare, body } };
    };
    t.heal();
    t.runUntil(() => t.replica(2).r.commitMin === 21, 'caught up');
    assert.equal(tampered, 2, 'the altered copy, then an intact one');
    const failures = t.replica(2).node.eventsOf('checksum_failure');
    assert.ok(failures.some((e) => e.op === 5 && e.source === 'message'));
    assert.equal(t.replica(2).node.machine.total, 20);
    t.expectSafe();
  });
});
