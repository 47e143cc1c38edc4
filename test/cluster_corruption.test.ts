// Repair from peers with real processes: a byte of a committed record is flipped in one
// replica's journal while that replica is down; the replica must restart and mend it.

import { strict as assert } from 'node:assert';
import { open } from 'node:fs/promises';
import { test } from 'node:test';
import { headerSizeBytes } from '../src/core/header.js';
import { Harness, sleep } from './harness.js';
import {
  History,
  TestCluster,
  Workload,
  checkAcked,
  createStreams,
  hangTimeoutMs,
} from './cluster_harness.js';
import { readJournal } from './journal_files.js';

const appendCount = 40;

test(
  'a replica repairs a corrupted committed record from its peers',
  { timeout: hangTimeoutMs },
  async (t) => {
    // Proves DESIGN §4 "a bad record before the tail is corruption: report it, repair it from a
    // peer, never silently drop it", across processes: 40 single-event appends are acknowledged
    // and replicated to all three replicas; one backup is stopped gracefully and one byte in the
    // body of a committed record in the middle of its journal is flipped (verify then reports
    // that record: the damage is real). The backup is started again: it starts (no refusal), it
    // rejoins, and it repairs the record from its peers, so that — once it has caught up and been
    // stopped gracefully again — `kimberlite-admin verify` is clean on its data directory and its
    // log head equals the others'. Writers and a reader keep working across the restart and the
    // repair. Every acknowledged event is still readable at its acknowledged offset, and the
    // clients' history (the first 40 appends included) passes the linearizability checker.
    const h = new Harness(t);
    const cluster = await TestCluster.start(h, { name: 'repair' });
    const { leader } = await cluster.waitForLeader();
    const victim = (leader + 1) % cluster.size;
    const [target] = await createStreams(cluster, 'repair', 1);
    assert.ok(target !== undefined);
    const history = new History();
    const db = await cluster.connect({ requestTimeoutMs: 20_000 });
    const firstClientId = 900_000;
    for (let index = 0; index < appendCount; index++) {
      const event = `event-${index}`;
      const input = { kind: 'append' as const, events: [event], expected: null };
      const pending = history.begin(target.key, firstClientId, input);
      const result = await db.append({ ...target, events: [event] });
      pending.done({ kind: 'appended', firstOffset: result.firstOffset, count: result.count });
      assert.equal(result.firstOffset, index);
    }
    await cluster.waitForConvergence();
    await cluster.stop(victim);

    const records = await readJournal(cluster.dataDirs[victim] ?? '');
    const damaged = records.find((record) => record.events.includes(`event-${appendCount / 2}`));
    assert.ok(damaged !== undefined, 'the middle event has a record in the journal');
    assert.ok(damaged.op < (records.at(-1)?.op ?? 0), 'the damaged record is not the tail');
    const file = await open(damaged.path, 'r+');
    try {
      const at = damaged.position + headerSizeBytes + Math.floor(damaged.bodySizeBytes / 2);
      const byte = Buffer.alloc(1);
      await file.read(byte, 0, 1, at);
      byte[0] = (byte[0] ?? 0) ^ 0xff;
      await file.write(byte, 0, 1, at);
    } finally {
      await file.close();
    }
    const before = await cluster.verify(victim);
    assert.equal(before.ok, false, 'verify sees the flipped byte');
    assert.match(before.run.stdout, new RegExp(`"op":${damaged.op}`));
    t.diagnostic(`flipped a byte in op ${damaged.op} of replica ${victim} (${damaged.segment})`);

    const workload = new Workload(cluster, history, [target], {
      writersPerStream: 2,
      readersPerStream: 1,
    });
    await cluster.restart(victim);
    await workload.start();
    await workload.waitForAcks(150);
    await workload.stop();
    await cluster.waitForConvergence();
    // Repair may finish after the replica reports the cluster's op numbers: poll verify (it only
    // reads, and is safe next to a running server) until the damaged record is mended.
    const deadline = Date.now() + 30_000;
    let during = await cluster.verify(victim);
    while (!during.ok && Date.now() < deadline) {
      await sleep(250);
      during = await cluster.verify(victim);
    }
    await cluster.stop(victim);
    const after = await cluster.verify(victim);
    const output = `${after.run.stdout}${after.run.stderr}`;
    assert.ok(
      after.ok,
      `verify of replica ${victim} after repair:\n${output}\n${cluster.describe(victim)}`,
    );
    const peer = await cluster.verify(leader);
    assert.deepEqual(
      [after.opMax, after.headChecksum, after.stateDigest],
      [peer.opMax, peer.headChecksum, peer.stateDigest],
      'the repaired replica holds the same log head as the leader',
    );

    assert.deepEqual(workload.unexpected, []);
    assert.deepEqual(await checkAcked(db, workload), []);
    const page = await db.read({ ...target });
    const events = page.events.map((event) => Buffer.from(event.data).toString('utf8'));
    assert.deepEqual(
      events.slice(0, appendCount),
      Array.from({ length: appendCount }, (_, index) => `event-${index}`),
    );
    assert.deepEqual(history.check(), []);
    t.diagnostic(`history: ${history.summary()}`);
    await db.close();
  },
);
