// Proves how the SDK leaves a replica that cannot serve, against in-process fake nodes: a node
// that keeps a request unanswered for attemptTimeoutMs (an old leader cut off from its peers) is
// given up on and the same request, same client id and number, goes to the next replica; a node
// answering KMB_ERR_NOT_READY (a leader without its quorum) or KMB_ERR_SHUTTING_DOWN sends the
// next attempt to another replica too, while a single-address client keeps retrying its one node.

import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { FakeServer } from '../testing/fake_server.js';
import type { FakeHooks } from '../testing/fake_server.js';
import { connect } from './client.js';
import type { Client, ConnectOptions } from './client.js';

const opened: Array<{ close(): Promise<void> }> = [];
after(async () => {
  for (const item of opened.reverse()) await item.close();
});

async function fake(hooks: FakeHooks = {}, nodeId = 0): Promise<FakeServer> {
  const server = await FakeServer.start({ hooks, nodeId });
  opened.push(server);
  return server;
}

async function client(options: ConnectOptions): Promise<Client> {
  const made = await connect({ actor: 'tester', ...options });
  opened.push(made);
  return made;
}

describe('leaving a replica that cannot serve', () => {
  it('resends a request a node sits on to the next replica, same number', async () => {
    const stuck = await fake({ onRequest: () => 'silent' }, 0);
    const leader = await fake({}, 1);
    const db = await client({
      addresses: [stuck.address, leader.address],
      requestTimeoutMs: 10_000,
      attemptTimeoutMs: 200,
    });
    const tenant = await db.createTenant('moved');
    assert.equal(tenant.tenantId, 1);
    assert.equal(stuck.appliedCount, 0);
    assert.equal(leader.appliedCount, 0 + 1);
    const sent = stuck.requests[0];
    const resent = leader.requests[0];
    assert.ok(sent !== undefined && resent !== undefined);
    assert.deepEqual([resent.clientId, resent.requestNumber], [sent.clientId, sent.requestNumber]);
  });

  it('moves on from a node that is not ready', async () => {
    const lonely = await fake({ onRequest: () => ({ error: 'KMB_ERR_NOT_READY' }) }, 0);
    const leader = await fake({}, 1);
    const db = await client({ addresses: [lonely.address, leader.address] });
    await db.createTenant('elsewhere');
    assert.equal(lonely.requestCount, 1);
    assert.equal(leader.appliedCount, 1);
  });

  it('moves on from a node that is shutting down', async () => {
    const stopping = await fake({ onQuery: () => ({ error: 'KMB_ERR_SHUTTING_DOWN' }) }, 0);
    const other = await fake({}, 1);
    const db = await client({ addresses: [stopping.address, other.address] });
    assert.deepEqual(await db.listTenants(), []);
    assert.equal(stopping.queryCount, 1);
    assert.equal(other.queryCount, 1);
  });

  it('keeps retrying its only node when it is not ready', async () => {
    let refusals = 3;
    const only = await fake({
      onRequest: (request) =>
        request.operation === 'command' && refusals-- > 0
          ? { error: 'KMB_ERR_NOT_READY' }
          : 'answer',
    });
    const db = await client({ addresses: [only.address] });
    await db.createTenant('patient');
    assert.equal(only.appliedCount, 1);
    assert.equal(only.helloCount, 1, 'the one connection was kept');
  });
});
