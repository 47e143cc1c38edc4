// Proves how the SDK deals with a replica that stops answering (a leader paused by SIGSTOP, cut
// off, or stuck), against in-process fake nodes that can be told to hold every hello and request:
//   - after the paused leader kept a request for attemptTimeoutMs, the backups' KMB_ERR_NOT_LEADER
//     hints naming it are not followed, and the write commits at the new leader within the call's
//     budget (before: the hint was followed and the call waited out connectTimeoutMs at the
//     paused node, and timed out);
//   - a node that does not answer the hello holds a call for at most its attempt budget, not
//     connectTimeoutMs (before: connect() timed out behind the first address);
//   - a replica found unresponsive is used again once it answers a hello, so a pause shorter
//     than an election (the old leader stays leader) does not strand the client;
//   - a timeout error lists what this call met, not what earlier calls met (before: every
//     address's last problem over the client's life).

import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { FakeServer } from '../testing/fake_server.js';
import type { FakeHooks } from '../testing/fake_server.js';
import { KmbError, connect } from './client.js';
import type { Client, ConnectOptions } from './client.js';

const opened: Array<{ close(): Promise<void> }> = [];
after(async () => {
  for (const item of opened.reverse()) await item.close();
});

async function fake(hooks: FakeHooks, nodeId: number): Promise<FakeServer> {
  const server = await FakeServer.start({ hooks, nodeId });
  opened.push(server);
  return server;
}

async function client(options: ConnectOptions): Promise<Client> {
  const made = await connect({ actor: 'tester', ...options });
  opened.push(made);
  return made;
}

/** A node that answers until `paused.on` is set, then holds every hello and request. */
function pausable(paused: { on: boolean }): FakeHooks {
  return {
    onHello: () => (paused.on ? 'silent' : 'answer'),
    onRequest: () => (paused.on ? 'silent' : 'answer'),
  };
}

const notLeader = (leaderHint: number) => ({ error: 'KMB_ERR_NOT_LEADER' as const, leaderHint });

describe('a replica that stops answering', () => {
  it('does not follow hints back to a paused leader; the write commits at the next', async () => {
    const paused = { on: false };
    const old = await fake(pausable(paused), 0);
    // Replica 1 names the old leader twice (still in its view), then leads; replica 2 lags.
    const next = await fake({ onRequest: (_r, n) => (n <= 2 ? notLeader(0) : 'answer') }, 1);
    const lagging = await fake({ onRequest: () => notLeader(0) }, 2);
    const db = await client({
      addresses: [old.address, next.address, lagging.address],
      attemptTimeoutMs: 200,
      requestTimeoutMs: 1_500,
    });
    paused.on = true;
    const tenant = await db.createTenant('after-the-pause');
    assert.equal(tenant.tenantId, 1);
    assert.equal(old.appliedCount, 0);
    assert.equal(next.appliedCount, 1, 'create_tenant at the new leader');
    const counters = db.failoverCounters;
    assert.equal(counters.unresponsive, 1, 'the paused leader was marked once');
    assert.ok(counters.hintsNotFollowed >= 1, `hints not followed: ${counters.hintsNotFollowed}`);
    assert.equal(counters.recovered, 0, 'it never answered again');
  });

  it('waits for a silent hello at most the attempt budget, then tries the next', async () => {
    const silent = await fake({ onHello: () => 'silent' }, 0);
    const other = await fake({}, 1);
    const db = await client({
      addresses: [silent.address, other.address],
      attemptTimeoutMs: 200,
      requestTimeoutMs: 2_000,
    });
    await db.createTenant('reached');
    assert.equal(other.appliedCount, 1);
    assert.equal(db.failoverCounters.unresponsive, 1);
  });

  it('comes back to a replica found unresponsive once it answers a hello again', async () => {
    // A pause shorter than an election: the replica is still the leader when it wakes, and
    // the others keep naming it. (The fake never answers a hello it held, unlike a process
    // that continues, so a short connectTimeoutMs lets a later probe find it awake.)
    const paused = { on: false };
    const leader = await fake(pausable(paused), 0);
    const b = await fake({ onRequest: () => notLeader(0) }, 1);
    const c = await fake({ onRequest: () => notLeader(0) }, 2);
    const db = await client({
      addresses: [leader.address, b.address, c.address],
      attemptTimeoutMs: 200,
      connectTimeoutMs: 300,
      requestTimeoutMs: 5_000,
    });
    paused.on = true;
    setTimeout(() => (paused.on = false), 600);
    await db.createTenant('woke-up');
    assert.equal(leader.appliedCount, 1);
    const counters = db.failoverCounters;
    assert.equal(counters.unresponsive, 1);
    assert.equal(counters.recovered, 1, 'the mark was lifted when it answered');
  });

  it('lists in a timeout only what this call met at each address', async () => {
    let silent = false;
    // Replica 0 turns the client's first request away; replica 1 serves until it falls silent.
    const first = await fake(
      { onRequest: (_r, n) => (n === 1 ? { error: 'KMB_ERR_NOT_READY' } : 'answer') },
      0,
    );
    const second = await fake({ onRequest: () => (silent ? 'silent' : 'answer') }, 1);
    const db = await client({
      addresses: [first.address, second.address],
      attemptTimeoutMs: 5_000,
      requestTimeoutMs: 300,
    });
    await db.createTenant('one');
    assert.equal(first.requestCount, 1, 'the first call met NOT_READY at replica 0');
    silent = true;
    const error = await db.createTenant('two').then(
      () => assert.fail('the call should time out'),
      (caught: unknown) => caught,
    );
    assert.ok(error instanceof KmbError && error.code === 'KMB_ERR_TIMEOUT', String(error));
    assert.match(error.message, new RegExp(`${second.address} \\(no answer in \\d+ ms\\)`));
    assert.ok(error.message.includes(`${first.address} (not tried in this call)`), error.message);
    assert.doesNotMatch(error.message, /NOT_READY/, 'the first call’s problem is not listed');
  });
});
