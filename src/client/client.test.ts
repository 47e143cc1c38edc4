// Proves the SDK's contract against an in-process fake node (fake_server.ts) that speaks the
// real protocol and applies commands with the real kernel: the happy path of every call, kernel
// rejections surfacing as KmbErrors with the kernel's codes, exactly-once retries (a connection
// dropped after a request was committed, or before, makes the SDK reconnect and resend the same
// client id and request number, and the fake applies it once), retryable errors retried and
// non-retryable ones thrown, leader hints followed, timeouts that name what was tried, writes
// sent one at a time while queries run concurrently, and close() ending waiting calls.

import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { KmbError } from '../core/errors.js';
import type { ErrorCode } from '../core/errors.js';
import { connect } from './client.js';
import type { Client } from './client.js';
import { FakeServer, inFlightCounter } from '../testing/fake_server.js';
import type { FakeHooks } from '../testing/fake_server.js';

const opened: Array<{ close(): Promise<void> }> = [];
after(async () => {
  for (const item of opened.reverse()) await item.close();
});

async function fake(hooks: FakeHooks = {}, nodeId = 0): Promise<FakeServer> {
  const server = await FakeServer.start({ hooks, nodeId });
  opened.push(server);
  return server;
}

async function client(addresses: string[], requestTimeoutMs = 5000): Promise<Client> {
  const made = await connect({ addresses, actor: 'tester', requestTimeoutMs });
  opened.push(made);
  return made;
}

async function rejectsWith(work: Promise<unknown>, code: ErrorCode): Promise<KmbError> {
  try {
    await work;
  } catch (error) {
    assert.ok(error instanceof KmbError, `expected a KmbError, got ${String(error)}`);
    assert.equal(error.code, code, error.message);
    return error;
  }
  assert.fail(`expected ${code}, but the call succeeded`);
}

async function tenantAndStream(db: Client): Promise<{ tenantId: number; streamId: number }> {
  const tenant = await db.createTenant(`t-${Math.random()}`);
  const stream = await db.createStream({ tenantId: tenant.tenantId, name: 'events' });
  return { tenantId: tenant.tenantId, streamId: stream.streamId };
}

describe('client happy path', () => {
  it('creates, appends, reads, lists and verifies', async () => {
    const server = await fake();
    const db = await client([server.address]);
    const tenant = await db.createTenant('acme', { reason: 'onboarding', correlationId: 'T-1' });
    assert.equal(tenant.tenantId, 1);
    assert.equal(tenant.name, 'acme');
    assert.match(tenant.createdAt, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
    const stream = await db.createStream({ tenantId: 1, name: 'vitals', dataClass: 'PHI' });
    assert.deepEqual([stream.streamId, stream.tenantId, stream.dataClass], [1, 1, 'PHI']);
    const other = await db.createStream({ tenantId: 1, name: 'public' });
    assert.equal(other.dataClass, 'Public');

    const bytes = new Uint8Array([0, 1, 2, 255]);
    const appended = await db.append({ tenantId: 1, streamId: 1, events: ['{"a":1}', bytes] });
    assert.deepEqual([appended.firstOffset, appended.count], [0, 2]);
    assert.match(appended.chainHead, /^[0-9a-f]{64}$/);
    const next = await db.append({ tenantId: 1, streamId: 1, events: ['x'], expectedOffset: 2 });
    assert.equal(next.firstOffset, 2);

    const read = await db.read({ tenantId: 1, streamId: 1, from: 1, limit: 1 });
    assert.equal(read.events.length, 1);
    assert.deepEqual(read.events[0]?.data, bytes);
    assert.deepEqual([read.nextOffset, read.endOffset], [2, 3]);
    const all = [];
    for await (const event of db.events({ tenantId: 1, streamId: 1 })) all.push(event.offset);
    assert.deepEqual(all, [0, 1, 2]);

    const tenants = await db.listTenants();
    assert.deepEqual(
      tenants.map((t) => [t.tenantId, t.name, t.sealed]),
      [[1, 'acme', false]],
    );
    const streams = await db.listStreams(1);
    assert.deepEqual(
      streams.map((s) => [s.name, s.nextOffset]),
      [
        ['vitals', 3],
        ['public', 0],
      ],
    );
    assert.equal(streams[0]?.chainHead, next.chainHead);
    const verdict = await db.verifyStream({ tenantId: 1, streamId: 1 });
    assert.deepEqual(verdict, { ok: true, eventCount: 3, chainHead: next.chainHead });
    assert.match(db.clientId ?? '', /^[0-9a-f]{32}$/);
  });

  it('detects a tampered event when verifying a stream', async () => {
    const server = await fake();
    const db = await client([server.address]);
    const { tenantId, streamId } = await tenantAndStream(db);
    await db.append({ tenantId, streamId, events: ['a', 'b', 'c'] });
    const stored = server.streamEvents.get(streamId as never);
    assert.ok(stored?.[1] !== undefined);
    stored[1] = { ...stored[1], data: new TextEncoder().encode('B') };
    const verdict = await db.verifyStream({ tenantId, streamId });
    assert.equal(verdict.ok, false);
  });
});

describe('kernel rejections', () => {
  it('surface with the kernel codes', async () => {
    const server = await fake();
    const db = await client([server.address]);
    await db.createTenant('dup');
    await rejectsWith(db.createTenant('dup'), 'KMB_ERR_TENANT_EXISTS');
    const { tenantId, streamId } = await tenantAndStream(db);
    await rejectsWith(
      db.append({ tenantId, streamId, events: ['x'], expectedOffset: 5 }),
      'KMB_ERR_OFFSET_MISMATCH',
    );
    await rejectsWith(db.listStreams(999), 'KMB_ERR_TENANT_NOT_FOUND');
    await rejectsWith(db.read({ tenantId, streamId: 999 }), 'KMB_ERR_STREAM_NOT_FOUND');
    // A committed rejection does not break the session: the next write still works.
    const ok = await db.append({ tenantId, streamId, events: ['y'], expectedOffset: 0 });
    assert.equal(ok.firstOffset, 0);
  });

  it('rejects bad arguments before sending anything', async () => {
    const server = await fake();
    const db = await client([server.address]);
    const before = server.requestCount;
    await rejectsWith(db.createStream({ tenantId: -1, name: 's' }), 'KMB_ERR_INVALID_ARGUMENT');
    const badClass = { tenantId: 1, name: 's', dataClass: 'Secret' as never };
    await rejectsWith(db.createStream(badClass), 'KMB_ERR_INVALID_ARGUMENT');
    await rejectsWith(db.read({ tenantId: 1, streamId: 1, limit: 0 }), 'KMB_ERR_INVALID_ARGUMENT');
    const big = new Uint8Array(600 * 1024);
    await rejectsWith(
      db.append({ tenantId: 1, streamId: 1, events: [big, big] }),
      'KMB_ERR_LIMIT_EXCEEDED',
    );
    assert.equal(server.requestCount, before);
  });
});

describe('exactly-once retries', () => {
  it('resends the same request after a drop following commit, applied once', async () => {
    let dropped = false;
    const server = await fake({
      onRequest: (request) => {
        if (request.operation !== 'command' || dropped) return 'answer';
        dropped = true;
        return 'drop_after';
      },
    });
    const db = await client([server.address]);
    const tenant = await db.createTenant('once');
    assert.equal(tenant.tenantId, 1);
    assert.equal(server.appliedCount, 1);
    const commands = server.requests.filter((r) => r.operation === 'command');
    assert.equal(commands.length, 2);
    assert.deepEqual(
      commands.map((r) => [r.clientId, r.requestNumber]),
      [
        [db.clientId, 1],
        [db.clientId, 1],
      ],
    );
    assert.ok(server.helloCount >= 2, 'the SDK reconnected');
  });

  it('resends the same request after a drop before commit, applied once', async () => {
    let drops = 0;
    const server = await fake({
      onRequest: (request) =>
        request.operation === 'command' && drops++ < 2 ? 'drop_before' : 'answer',
    });
    const db = await client([server.address]);
    const { tenantId, streamId } = await tenantAndStream(db);
    const appended = await db.append({ tenantId, streamId, events: ['e'] });
    assert.equal(appended.firstOffset, 0);
    assert.equal(server.appliedCount, 3);
    assert.deepEqual(
      server.requests.map((r) => r.requestNumber),
      [0, 1, 1, 1, 2, 3],
    );
  });

  it('retries retryable errors and throws non-retryable ones', async () => {
    let busy = 2;
    let refuse = false;
    const server = await fake({
      onRequest: (request) => {
        if (request.operation !== 'command') return 'answer';
        if (refuse) return { error: 'KMB_ERR_INVALID_ARGUMENT' };
        return busy-- > 0 ? { error: 'KMB_ERR_BACKPRESSURE' } : 'answer';
      },
    });
    const db = await client([server.address]);
    await db.createTenant('busy');
    assert.equal(server.appliedCount, 1);
    const firstClient = db.clientId;
    refuse = true;
    const error = await rejectsWith(db.createTenant('refused'), 'KMB_ERR_INVALID_ARGUMENT');
    assert.equal(error.retryable, false);
    // The failed request spent its number, so the session was abandoned for a fresh one.
    refuse = false;
    await db.createTenant('fresh');
    assert.notEqual(db.clientId, firstClient);
    assert.equal(server.requests.at(-1)?.requestNumber, 1);
  });

  it('follows a leader hint to another replica', async () => {
    const follower = await fake(
      {
        onRequest: () => ({ error: 'KMB_ERR_NOT_LEADER', leaderHint: 1 }),
        onQuery: () => ({ error: 'KMB_ERR_NOT_LEADER', leaderHint: 1 }),
      },
      0,
    );
    const leader = await fake({}, 1);
    const db = await client([follower.address, leader.address]);
    const tenant = await db.createTenant('led');
    assert.equal(tenant.tenantId, 1);
    assert.equal(leader.appliedCount, 1);
    assert.equal(follower.appliedCount, 0);
    assert.equal(follower.requestCount, 1);
    assert.equal((await db.listTenants()).length, 1);
  });

  it('moves on to the next address when a follower knows no leader', async () => {
    const follower = await fake({ onRequest: () => ({ error: 'KMB_ERR_NOT_LEADER' }) }, 0);
    const leader = await fake({}, 1);
    const db = await client([follower.address, leader.address]);
    await db.createTenant('elsewhere');
    assert.equal(leader.appliedCount, 1);
    assert.equal(follower.appliedCount, 0);
  });

  it('resends a query after the connection drops', async () => {
    const server = await fake({
      onQuery: (_query, count) => (count === 1 ? 'drop_before' : 'answer'),
    });
    const db = await client([server.address]);
    assert.deepEqual(await db.listTenants(), []);
    assert.equal(server.queryCount, 2);
  });
});

describe('timeouts and failures', () => {
  it('times out a request that is never answered, naming what was tried', async () => {
    let silent = true;
    const server = await fake({
      onRequest: (request) => (request.operation === 'command' && silent ? 'silent' : 'answer'),
    });
    const db = await client([server.address], 300);
    const error = await rejectsWith(db.createTenant('slow'), 'KMB_ERR_TIMEOUT');
    assert.match(error.message, /create_tenant/);
    assert.match(error.message, /may or may not have been applied/);
    assert.ok(error.message.includes(server.address));
    const abandoned = server.requests.at(-1)?.clientId;
    silent = false;
    await db.createTenant('later');
    assert.notEqual(db.clientId, abandoned, 'a timed-out session is not reused');
  });

  it('times out connecting to an address where nothing listens', async () => {
    const server = await fake();
    const address = server.address;
    await server.close();
    const work = connect({ addresses: [address], requestTimeoutMs: 300 });
    const error = await rejectsWith(work, 'KMB_ERR_TIMEOUT');
    assert.ok(error.message.includes(address));
    assert.match(error.message, /ECONNREFUSED/);
  });

  it('fails fast on a cluster mismatch', async () => {
    const server = await fake();
    const work = connect({ addresses: [server.address], clusterName: 'other' });
    await rejectsWith(work, 'KMB_ERR_CLUSTER_MISMATCH');
  });

  it('retries a hello refused with a retryable code', async () => {
    const server = await fake({
      onHello: (count) => (count === 1 ? { error: 'KMB_ERR_NOT_READY' } : 'answer'),
    });
    const db = await client([server.address]);
    assert.deepEqual(await db.listTenants(), []);
    assert.equal(server.helloCount, 2);
  });

  it('ends waiting calls on close and refuses calls after it', async () => {
    const server = await fake({ onQuery: () => 'silent' });
    const db = await client([server.address]);
    const waiting = db.listTenants();
    await new Promise((resolve) => setTimeout(resolve, 20));
    await db.close();
    await rejectsWith(waiting, 'KMB_ERR_CONNECTION_LOST');
    await rejectsWith(db.createTenant('late'), 'KMB_ERR_CONNECTION_LOST');
  });
});

describe('concurrency', () => {
  it('sends writes one at a time and runs queries concurrently', async () => {
    const counter = inFlightCounter();
    const server = await fake(counter.hooks);
    const db = await client([server.address]);
    const { tenantId, streamId } = await tenantAndStream(db);
    const writes = Array.from({ length: 20 }, (_, i) =>
      db.append({ tenantId, streamId, events: [`e${i}`] }),
    );
    const reads = Array.from({ length: 20 }, () => db.read({ tenantId, streamId }));
    const appended = await Promise.all(writes);
    await Promise.all(reads);
    assert.deepEqual(
      appended.map((a) => a.firstOffset),
      Array.from({ length: 20 }, (_, i) => i),
    );
    const numbers = server.requests.map((r) => r.requestNumber);
    assert.deepEqual(
      numbers,
      Array.from({ length: numbers.length }, (_, i) => i),
    );
    assert.equal(counter.max(), 1);
  });
});
