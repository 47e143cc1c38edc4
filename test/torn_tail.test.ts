// Damage to the journal on disk, made by the test after a SIGKILL: a torn tail (the last record
// cut in half, as an unfinished write leaves it) must be truncated and the server must serve;
// a flipped byte inside a committed record before the tail is corruption, which verify must
// report precisely and start-up must refuse.

import { strict as assert } from 'node:assert';
import { open, truncate } from 'node:fs/promises';
import { test } from 'node:test';
import { verifyStreamChain } from '../src/client/client.js';
import { headerSizeBytes } from '../src/core/header.js';
import { Harness } from './harness.js';
import type { ServerProcess } from './harness.js';
import { readJournal } from './journal_files.js';
import type { JournalRecord } from './journal_files.js';

const appendCount = 12;

/** Starts a server, appends `appendCount` single-event batches, and SIGKILLs it. */
async function populate(
  h: Harness,
  dataDir: string,
): Promise<{ server: ServerProcess; tenantId: number; streamId: number; acked: string[] }> {
  const server = await h.startServer({ dataDir });
  const db = await h.connect({ addresses: [server.address] });
  const tenant = await db.createTenant('disk');
  const stream = await db.createStream({ tenantId: tenant.tenantId, name: 'events' });
  const acked: string[] = [];
  for (let index = 0; index < appendCount; index++) {
    const data = `event-${index}`;
    const result = await db.append({
      tenantId: tenant.tenantId,
      streamId: stream.streamId,
      events: [data],
    });
    assert.equal(result.firstOffset, index);
    acked.push(data);
  }
  await db.close();
  const status = await server.kill('SIGKILL');
  assert.equal(status.signal, 'SIGKILL');
  return { server, tenantId: tenant.tenantId, streamId: stream.streamId, acked };
}

function lastOf(records: readonly JournalRecord[]): JournalRecord {
  const last = records[records.length - 1];
  assert.ok(last !== undefined, 'the journal has records');
  return last;
}

test('a torn last record is truncated at start-up and every earlier ack survives', async (t) => {
  // Proves the torn-tail rule of DESIGN §4: after a SIGKILL the last segment is cut to the middle
  // of its last record (what an unfinished write leaves). The server starts, logs that it
  // truncated a torn tail at that record's position, and serves: every acknowledged event not in
  // the cut record is there, in order, with a chain that recomputes to list_streams' head, and a
  // new append lands at the next offset.
  const h = new Harness(t);
  const dataDir = await h.tempDir();
  const { server, tenantId, streamId, acked } = await populate(h, dataDir);
  const cut = lastOf(await readJournal(dataDir));
  assert.ok(cut.events.length > 0, 'the last record holds the last append');
  await truncate(cut.path, cut.position + Math.floor(cut.sizeBytes / 2));

  const restarted = await h.restart(server);
  const torn = restarted.lines.find((line) => /torn tail/i.test(line.message));
  assert.ok(torn !== undefined, `no torn-tail log line\n${restarted.describe()}`);
  assert.equal(torn.fields['position'], cut.position, JSON.stringify(torn));

  const db = await h.connect({ addresses: [restarted.address] });
  const survivors = acked.filter((data) => !cut.events.includes(data));
  const read = await db.read({ tenantId, streamId });
  assert.deepEqual(
    read.events.map((event) => Buffer.from(event.data).toString('utf8')),
    survivors,
  );
  const [summary] = await db.listStreams(tenantId);
  assert.ok(summary !== undefined);
  assert.equal(summary.nextOffset, survivors.length);
  const verdict = verifyStreamChain({
    tenantId,
    streamId,
    events: read.events,
    expectedHead: summary.chainHead,
  });
  assert.ok(verdict.ok, JSON.stringify(verdict));
  const next = await db.append({ tenantId, streamId, events: ['after-restart'] });
  assert.equal(next.firstOffset, survivors.length);
});

test('a flipped byte in a committed record fails verify and start-up', async (t) => {
  // Proves that corruption before the tail is never taken for a torn write: one byte inside the
  // body of a committed record in the middle of the journal is flipped. `kimberlite-admin
  // verify` exits non-zero and its report names the segment file, the record's byte position
  // and its op; the server refuses to start (non-zero exit) with a message that points the
  // operator to `kimberlite-admin verify`.
  const h = new Harness(t);
  const dataDir = await h.tempDir();
  await populate(h, dataDir);
  const records = await readJournal(dataDir);
  const victim = records[Math.floor(records.length / 2)];
  assert.ok(victim !== undefined && victim !== lastOf(records), 'a record before the last');
  assert.ok(victim.bodySizeBytes > 0, 'the record has a body');
  const flippedAt = victim.position + headerSizeBytes + Math.floor(victim.bodySizeBytes / 2);
  const file = await open(victim.path, 'r+');
  try {
    const byte = Buffer.alloc(1);
    await file.read(byte, 0, 1, flippedAt);
    byte[0] = (byte[0] ?? 0) ^ 0xff;
    await file.write(byte, 0, 1, flippedAt);
  } finally {
    await file.close();
  }

  const verify = await h.runAdmin(['verify', '--data-dir', dataDir]);
  const report = `${verify.stdout}\n${verify.stderr}`;
  assert.notEqual(verify.code, 0, `verify passed a corrupt journal:\n${report}`);
  assert.ok(report.includes(victim.segment), `the segment is named:\n${report}`);
  const positions = [victim.position, flippedAt].map(String);
  assert.ok(
    positions.some((position) => new RegExp(`\\b${position}\\b`).test(report)),
    `the position (${positions.join(' or ')}) is named:\n${report}`,
  );
  assert.match(report, new RegExp(`\\bop ${victim.op}\\b`), 'the op is named');

  const start = await h.runServerToExit({ dataDir });
  const output = `${start.stdout}\n${start.stderr}`;
  assert.notEqual(start.code, 0, `the server started on a corrupt journal:\n${output}`);
  assert.equal(start.signal, null);
  assert.match(output, /kimberlite-admin verify/, 'the refusal points to verify');
});
