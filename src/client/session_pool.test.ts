// Proves SDK pipelining (session_pool.ts) against the in-process fake node (real protocol, real
// kernel): with pipelineMax 8, forty appends called at once reach the node several at a time
// (more than one request arrives before any is answered) on at most 8 sessions, each session
// numbering its requests 0, 1, 2... without a gap, and every event is applied exactly once.
// Backpressure: when every session is busy and the pool-wide queue is full, one more write is
// refused at once with KMB_ERR_BACKPRESSURE. A pipelineMax outside 1..256 is refused.

import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { KmbError } from '../core/errors.js';
import { FakeServer, inFlightCounter } from '../testing/fake_server.js';
import type { FakeHooks } from '../testing/fake_server.js';
import { connect } from './client.js';
import { clientLimits } from './options.js';

const opened: Array<{ close(): Promise<void> }> = [];
after(async () => {
  for (const item of opened.reverse()) await item.close();
});

async function fake(hooks: FakeHooks = {}): Promise<FakeServer> {
  const server = await FakeServer.start({ hooks, nodeId: 0 });
  opened.push(server);
  return server;
}

describe('pipelined writes', () => {
  it('keeps up to pipelineMax writes in flight, each session in order, each event once', async () => {
    const counter = inFlightCounter();
    const server = await fake(counter.hooks);
    const db = await connect({ addresses: [server.address], actor: 't', pipelineMax: 8 });
    opened.push(db);
    const tenant = await db.createTenant('t');
    const stream = await db.createStream({ tenantId: tenant.tenantId, name: 's' });
    const target = { tenantId: tenant.tenantId, streamId: stream.streamId };
    const names = Array.from({ length: 40 }, (_, i) => `e${i}`);
    const results = await Promise.all(
      names.map((name) => db.append({ ...target, events: [name] })),
    );

    assert.ok(counter.max() > 1, `writes were pipelined (at most ${counter.max()} in flight)`);
    assert.ok(counter.max() <= 8, `never more than pipelineMax in flight (${counter.max()})`);
    const offsets = results.map((result) => result.firstOffset).sort((a, b) => a - b);
    assert.deepEqual(
      offsets,
      names.map((_, i) => i),
      'every append got its own offset',
    );
    const page = await db.read(target);
    const stored = page.events.map((event) => Buffer.from(event.data).toString('utf8'));
    assert.deepEqual([...stored].sort(), [...names].sort(), 'every event stored exactly once');

    const numbersByClient = new Map<string, number[]>();
    for (const request of server.requests) {
      const numbers = numbersByClient.get(request.clientId) ?? [];
      numbers.push(request.requestNumber);
      numbersByClient.set(request.clientId, numbers);
    }
    assert.ok(numbersByClient.size > 1 && numbersByClient.size <= 8, `${numbersByClient.size}`);
    for (const numbers of numbersByClient.values()) {
      assert.deepEqual(
        numbers,
        numbers.map((_, i) => i),
        'one session numbers without gaps',
      );
    }
  });

  it('refuses a write with KMB_ERR_BACKPRESSURE once every session is busy and the queue full', async () => {
    const server = await fake({ onRequest: () => 'silent' });
    const db = await connect({
      addresses: [server.address],
      actor: 't',
      pipelineMax: 2,
      requestTimeoutMs: 60_000,
    });
    const target = { tenantId: 1, streamId: 1, events: ['x'] };
    const pending: Array<Promise<unknown>> = [];
    for (let i = 0; i < 2 + clientLimits.requestQueueCountMax; i++) {
      pending.push(db.append(target).catch((error: unknown) => error));
    }
    await assert.rejects(db.append(target), (error: unknown) => {
      assert.ok(error instanceof KmbError);
      assert.equal(error.code, 'KMB_ERR_BACKPRESSURE');
      return true;
    });
    await db.close();
    const outcomes = await Promise.all(pending);
    assert.ok(outcomes.every((outcome) => outcome instanceof KmbError));
  });

  it('refuses a pipelineMax outside 1..256', async () => {
    for (const pipelineMax of [0, 257, 1.5]) {
      await assert.rejects(connect({ addresses: ['127.0.0.1:1'], pipelineMax }), {
        code: 'KMB_ERR_INVALID_ARGUMENT',
      });
    }
  });
});
