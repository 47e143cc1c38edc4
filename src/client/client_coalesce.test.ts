// Proves coalesceAppends end to end against the in-process fake node (real protocol, real
// kernel): 300 concurrent one-event appends commit in far fewer commands than calls, every call
// gets its own offset, the event stored at that offset is the call's own, the stream's chain
// verifies, and with the default one write slot the offsets follow call order. Appends that
// cannot be merged (an expected offset, different audit fields, another stream) still commit
// correctly, each on its own terms, and a kernel rejection reaches every call of its command.

import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { KmbError } from '../core/errors.js';
import { connect, verifyStreamChain } from './client.js';
import type { Client } from './client.js';
import { FakeServer } from '../testing/fake_server.js';

const opened: Array<{ close(): Promise<void> }> = [];
after(async () => {
  for (const item of opened.reverse()) await item.close();
});

async function setup(pipelineMax = 1): Promise<{ server: FakeServer; db: Client }> {
  const server = await FakeServer.start({ hooks: {}, nodeId: 0 });
  opened.push(server);
  const db = await connect({
    addresses: [server.address],
    actor: 'tester',
    pipelineMax,
    coalesceAppends: true,
  });
  opened.push(db);
  return { server, db };
}

async function stream(db: Client, name: string): Promise<{ tenantId: number; streamId: number }> {
  const tenant = await db.createTenant(`t-${name}`);
  const created = await db.createStream({ tenantId: tenant.tenantId, name });
  return { tenantId: tenant.tenantId, streamId: created.streamId };
}

describe('coalesceAppends', () => {
  for (const pipelineMax of [1, 4]) {
    it(`merges concurrent appends and gives each call its own offsets (pipelineMax ${pipelineMax})`, async () => {
      const { server, db } = await setup(pipelineMax);
      const target = await stream(db, 'merged');
      const before = server.appliedCount;
      const callCount = 300;
      const results = await Promise.all(
        Array.from({ length: callCount }, (_, i) =>
          db.append({ ...target, events: [`call-${i}`] }),
        ),
      );
      const commands = server.appliedCount - before;
      assert.ok(commands < callCount / 4, `${commands} commands for ${callCount} calls`);
      const offsets = results.map((r) => r.firstOffset);
      assert.equal(new Set(offsets).size, callCount, 'every call has its own offset');
      if (pipelineMax === 1) {
        assert.deepEqual(
          offsets,
          Array.from({ length: callCount }, (_, i) => i),
          'call order',
        );
      }
      const read = await db.read({ ...target, from: 0, limit: 1000 });
      assert.equal(read.events.length, callCount);
      const text = new TextDecoder();
      results.forEach((result, i) => {
        assert.equal(result.count, 1);
        assert.equal(text.decode(read.events[result.firstOffset]!.data), `call-${i}`);
      });
      const last = results.reduce((a, b) => (b.firstOffset > a.firstOffset ? b : a));
      const verdict = verifyStreamChain({
        ...target,
        events: read.events,
        expectedHead: last.chainHead,
      });
      assert.ok(verdict.ok, JSON.stringify(verdict));
    });
  }

  it('keeps call order with one slot: never merges past another stream, reason or offset', async () => {
    const { server, db } = await setup();
    const a = await stream(db, 'a');
    const b = await stream(db, 'b');
    const before = server.appliedCount;
    const calls = [
      db.append({ ...a, events: ['a0'] }),
      db.append({ ...b, events: ['b0'] }),
      db.append({ ...a, events: ['a1'] }, { reason: 'other reason' }),
      db.append({ ...a, events: ['a2'], expectedOffset: 0 }),
      db.append({ ...a, events: ['a3'] }),
    ];
    const settled = await Promise.allSettled(calls);
    // One slot keeps call order, so no call is merged past one of another stream, reason or an
    // expected offset: five commands.
    assert.equal(server.appliedCount - before, 5);
    const a2 = settled[3]!;
    assert.equal(a2.status, 'rejected', 'a2 expected offset 0, but a0 and a1 came first');
    assert.equal((a2.reason as KmbError).code, 'KMB_ERR_OFFSET_MISMATCH');
    const read = await db.read({ ...a, from: 0, limit: 10 });
    const text = new TextDecoder();
    assert.deepEqual(
      read.events.map((e) => text.decode(e.data)),
      ['a0', 'a1', 'a3'],
    );
  });

  it('fails every merged call with the kernel code when the command is rejected', async () => {
    const { db } = await setup();
    const target = await stream(db, 'real');
    const missing = { tenantId: target.tenantId, streamId: target.streamId + 99 };
    const settled = await Promise.allSettled(
      Array.from({ length: 10 }, (_, i) => db.append({ ...missing, events: [`x${i}`] })),
    );
    for (const outcome of settled) {
      assert.equal(outcome.status, 'rejected');
      assert.equal((outcome.reason as KmbError).code, 'KMB_ERR_STREAM_NOT_FOUND');
    }
    const ok = await db.append({ ...target, events: ['after'] });
    assert.equal(ok.firstOffset, 0, 'the client keeps working');
  });
});
