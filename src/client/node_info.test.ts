// Proves the SDK's operator queries: parseNodeStatus and parseViewChanges accept the node's
// documents (extra fields kept in `raw`, missing optional ones given neutral values) and turn
// malformed ones into KMB_ERR_FRAME_MALFORMED naming the node and the field; fetchNodeStatus and
// Client.nodeStatus/viewChanges ask exactly the address given, against the in-process fake node,
// and never fail over: a down address is an error even when the client knows a live one.

import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { after, describe, it } from 'node:test';
import { KmbError } from '../core/errors.js';
import { FakeServer } from '../testing/fake_server.js';
import type { FakeHooks } from '../testing/fake_server.js';
import { connect } from './client.js';
import { fetchNodeStatus, parseNodeStatus, parseViewChanges } from './node_info.js';

const opened: Array<{ close(): Promise<void> }> = [];
after(async () => {
  for (const item of opened.reverse()) await item.close();
});

async function fake(hooks: FakeHooks = {}, nodeId = 0): Promise<FakeServer> {
  const server = await FakeServer.start({ hooks, nodeId });
  opened.push(server);
  return server;
}

/** An address where nothing listens (bound, then closed). */
async function deadAddress(): Promise<string> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return `127.0.0.1:${port}`;
}

function malformed(work: () => unknown, pattern: RegExp): void {
  assert.throws(work, (error: unknown) => {
    assert.ok(error instanceof KmbError);
    assert.equal(error.code, 'KMB_ERR_FRAME_MALFORMED');
    assert.match(error.message, pattern);
    return true;
  });
}

const fullStatus = {
  node_id: 1,
  status: 'normal',
  view: 4,
  commit_number: 17,
  op_number: 18,
  is_leader: true,
  leader: 1,
  cluster_size: 3,
  healthy_replicas: 3,
  cluster_name: 'local',
  cluster_members: [
    { node_id: 0, address: '127.0.0.1:7001', self: false, connected: true, is_leader: false },
    { node_id: 1, address: '127.0.0.1:7002', self: true, connected: true, is_leader: true },
  ],
  commit_timestamp_us: 1_700_000_000_123_456,
  extra_field: 'kept',
};

describe('parsing operator documents', () => {
  it('reads a full node_status and keeps every field in raw', () => {
    const status = parseNodeStatus(JSON.stringify(fullStatus), 'n1');
    assert.equal(status.nodeId, 1);
    assert.equal(status.isLeader, true);
    assert.equal(status.leader, 1);
    assert.equal(status.commitTimestampUs, 1_700_000_000_123_456);
    assert.deepEqual(status.clusterMembers[1], {
      nodeId: 1,
      address: '127.0.0.1:7002',
      connected: true,
      isLeader: true,
      self: true,
    });
    assert.equal(status.raw['extra_field'], 'kept');
  });

  it('gives optional fields neutral values', () => {
    const minimal = { node_id: 0, status: 'recovering', view: 0 };
    const status = parseNodeStatus(
      JSON.stringify({ ...minimal, commit_number: 0, op_number: 0, is_leader: false }),
      'n0',
    );
    assert.equal(status.leader, null);
    assert.equal(status.commitTimestampUs, null);
    assert.deepEqual(status.clusterMembers, []);
    assert.equal(status.clusterSize, 1);
  });

  it('rejects malformed documents, naming the node and the field', () => {
    malformed(() => parseNodeStatus('not json', 'node-x'), /node_status from node-x is not JSON/);
    malformed(() => parseNodeStatus('[]', 'node-x'), /not a JSON object/);
    const badView = JSON.stringify({ ...fullStatus, view: -1 });
    malformed(() => parseNodeStatus(badView, 'node-x'), /"view" must be a non-negative integer/);
    const badMember = JSON.stringify({ ...fullStatus, cluster_members: [{ address: 'a' }] });
    malformed(() => parseNodeStatus(badMember, 'node-x'), /cluster_members\[0\].*"node_id"/);
    malformed(
      () => parseViewChanges('{}', 'node-y'),
      /view_changes from node-y is not a JSON list/,
    );
    malformed(() => parseViewChanges('[{"view":1}]', 'node-y'), /entry 0.*"started_at"/);
  });

  it('reads view changes, finished or not', () => {
    const changes = parseViewChanges(
      JSON.stringify([
        {
          started_at: '2026-01-01T00:00:00.000Z',
          finished_at: '2026-01-01T00:00:00.800Z',
          old_view: 0,
          view: 1,
          reason: 'primary_timeout',
          leader: 1,
          duration_ms: 800,
        },
        {
          started_at: '2026-01-01T00:01:00.000Z',
          finished_at: null,
          old_view: 1,
          view: 2,
          reason: 'primary_timeout',
          leader: null,
          duration_ms: null,
        },
      ]),
      'n',
    );
    assert.deepEqual(
      changes.map((c) => [c.view, c.leader, c.durationMs, c.finishedAt]),
      [
        [1, 1, 800, '2026-01-01T00:00:00.800Z'],
        [2, null, null, null],
      ],
    );
  });
});

describe('asking one node', () => {
  it('fetches the status a node reports', async () => {
    const server = await fake({ nodeStatus: () => fullStatus });
    const status = await fetchNodeStatus(server.address, { timeoutMs: 2000 });
    assert.equal(status.view, 4);
    assert.equal(status.clusterName, 'local');
  });

  it('asks the address given and never fails over', async () => {
    const live = await fake({}, 0);
    const down = await deadAddress();
    const db = await connect({ addresses: [live.address, down], actor: 't' });
    opened.push(db);
    const own = await db.nodeStatus();
    assert.equal(own.nodeId, 0);
    assert.equal(own.isLeader, true);
    await assert.rejects(db.nodeStatus(down, { timeoutMs: 500 }), (error: unknown) => {
      assert.ok(error instanceof KmbError);
      assert.equal(error.code, 'KMB_ERR_CONNECTION_LOST');
      assert.ok(error.message.includes(down), error.message);
      return true;
    });
    assert.deepEqual(await db.viewChanges(live.address), []);
  });

  it('times out on a node that never answers', async () => {
    const silent = await fake({ onQuery: () => 'silent' });
    const started = Date.now();
    await assert.rejects(fetchNodeStatus(silent.address, { timeoutMs: 200 }), (error: unknown) => {
      assert.ok(error instanceof KmbError);
      assert.equal(error.code, 'KMB_ERR_TIMEOUT');
      return true;
    });
    assert.ok(Date.now() - started < 5000, 'the budget bounds the wait');
  });

  it('passes the node error through', async () => {
    const refusing = await fake({ onQuery: () => ({ error: 'KMB_ERR_NOT_READY' }) });
    await assert.rejects(fetchNodeStatus(refusing.address, { timeoutMs: 1000 }), /injected/);
  });
});
