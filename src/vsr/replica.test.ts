// Scenario tests for the replica as a pure state machine. A tiny harness plays the shell: it
// performs journal appends into an in-memory journal, reports durability when the test says so,
// and delivers messages between replicas. The state machine under the replica is a counter, so
// every test can check exactly which commands were applied, and how many times.

import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { clusterIdFromName, rootPrepare } from '../core/header.js';
import type { Prepare } from '../core/header.js';
import { asClientId, asReplicaIndex, asRequestNumber, asView } from '../core/types.js';
import type { ClientId } from '../core/types.js';
import { errorCodes } from '../core/errors.js';
import type { Request } from './batch.js';
import type { Effect } from './message.js';
import { Replica } from './replica.js';
import type { StateMachine } from './replica.js';

const cluster = clusterIdFromName('test');
const root = rootPrepare(cluster).header.checksum;

/** A state machine that sums the first byte of each command body: easy to check. */
function counter(): StateMachine<number> & { total: number; applied: number } {
  const machine = {
    total: 0,
    applied: 0,
    apply(body: Uint8Array) {
      machine.total += body[0] ?? 0;
      machine.applied += 1;
      return { result: Uint8Array.of(machine.total & 0xff), output: machine.total };
    },
  };
  return machine;
}

function client(n: number): ClientId {
  return asClientId(n.toString(16).padStart(32, '0'));
}

function request(c: ClientId, number: number, value = 1): Request {
  return number === 0
    ? {
        clientId: c,
        requestNumber: asRequestNumber(0),
        operation: 'register',
        body: new Uint8Array(),
      }
    : {
        clientId: c,
        requestNumber: asRequestNumber(number),
        operation: 'command',
        body: Uint8Array.of(value),
      };
}

interface Node {
  replica: Replica<number>;
  machine: ReturnType<typeof counter>;
  journal: Prepare[];
  unsynced: Prepare[];
}

function makeNode(
  index: number,
  count: number,
  options: { pipeline?: number; sessions?: number } = {},
): Node {
  const machine = counter();
  let now = 1_000_000;
  const replica = new Replica<number>({
    cluster,
    replica: asReplicaIndex(index),
    replicaCount: count,
    stateMachine: machine,
    realtimeUs: () => (now += 10),
    view: asView(0),
    rootChecksum: root,
    pipelinePrepareCountMax: options.pipeline ?? 8,
    clientSessionCountMax: options.sessions ?? 64,
  });
  return { replica, machine, journal: [], unsynced: [] };
}

/** Plays the shell for a set of replicas. */
class Cluster {
  readonly nodes: Node[];
  readonly replies: Effect<number>[] = [];
  private readonly inFlight: { to: number; effect: Extract<Effect<number>, { kind: 'send' }> }[] =
    [];

  constructor(count: number, options: { pipeline?: number; sessions?: number } = {}) {
    this.nodes = Array.from({ length: count }, (_, i) => makeNode(i, count, options));
    for (const node of this.nodes) this.perform(node, node.replica.finishRecovery());
  }

  node(i: number): Node {
    const node = this.nodes[i];
    assert.ok(node);
    return node;
  }

  perform(node: Node, effects: Effect<number>[]): void {
    for (const effect of effects) {
      if (effect.kind === 'journal_append') node.unsynced.push(effect.prepare);
      else if (effect.kind === 'send') this.inFlight.push({ to: effect.target, effect });
      else if (effect.kind === 'reply' || effect.kind === 'reject') this.replies.push(effect);
    }
  }

  request(i: number, r: Request): void {
    this.perform(this.node(i), this.node(i).replica.onRequest(r));
  }

  /** Completes every pending journal write of replica i (write + fsync). */
  sync(i: number): void {
    const node = this.node(i);
    const written = node.unsynced.splice(0);
    for (const prepare of written) {
      node.journal.push(prepare);
      this.perform(node, node.replica.onJournalDurable(prepare.header.op, prepare.header.checksum));
    }
  }

  deliver(): void {
    while (this.inFlight.length > 0) {
      const { to, effect } = this.inFlight.shift()!;
      this.perform(this.node(to), this.node(to).replica.onMessage(effect.message));
    }
  }

  settle(): void {
    for (let round = 0; round < 10; round++) {
      for (let i = 0; i < this.nodes.length; i++) this.sync(i);
      this.deliver();
    }
  }

  takeReplies(): Effect<number>[] {
    return this.replies.splice(0);
  }
}

describe('replica, one replica', () => {
  it('replies only after the prepare is durable', () => {
    // Proves acknowledgement waits for the journal: no reply before onJournalDurable.
    const t = new Cluster(1);
    t.request(0, request(client(1), 0));
    assert.equal(t.node(0).unsynced.length, 1);
    assert.equal(t.takeReplies().length, 0);
    t.sync(0);
    const replies = t.takeReplies();
    assert.equal(replies.length, 1);
    assert.equal(replies[0]?.kind, 'reply');
    t.request(0, request(client(1), 1, 5));
    assert.equal(t.node(0).machine.applied, 0);
    t.sync(0);
    assert.equal(t.node(0).machine.total, 5);
    assert.equal(t.takeReplies().length, 1);
  });

  it('answers a duplicate from the client table without applying it again', () => {
    // Proves exactly-once: a retried committed request gets the cached reply, applied once.
    const t = new Cluster(1);
    t.request(0, request(client(1), 0));
    t.sync(0);
    t.request(0, request(client(1), 1, 7));
    t.request(0, request(client(1), 1, 7)); // duplicate while in flight: dropped
    t.sync(0);
    t.takeReplies();
    t.request(0, request(client(1), 1, 7)); // duplicate after commit: cached reply
    const replies = t.takeReplies();
    assert.equal(replies.length, 1);
    assert.equal(replies[0]?.kind, 'reply');
    assert.equal(t.node(0).machine.applied, 1);
    assert.equal(t.node(0).machine.total, 7);
    assert.equal(t.node(0).journal.length, 2);
  });

  it('rejects unregistered, stale and out-of-order requests with stable codes', () => {
    // Proves session checks answer with codes instead of applying anything.
    const t = new Cluster(1);
    t.request(0, request(client(9), 1));
    t.request(0, request(client(1), 0));
    t.sync(0);
    t.request(0, request(client(1), 3));
    t.request(0, request(client(1), 1));
    t.sync(0);
    t.request(0, request(client(1), 2));
    t.request(0, request(client(1), 3)); // while 2 is in flight
    const codes = t.takeReplies().map((e) => (e.kind === 'reject' ? e.code : 'reply'));
    assert.deepEqual(codes, [
      errorCodes.session_not_registered,
      'reply',
      errorCodes.request_gap,
      'reply',
      errorCodes.request_gap,
    ]);
    t.sync(0);
    t.request(0, request(client(1), 1)); // older than the latest committed
    const last = t.takeReplies().map((e) => (e.kind === 'reject' ? e.code : 'reply'));
    assert.deepEqual(last, ['reply', errorCodes.request_stale]);
    assert.equal(t.node(0).machine.applied, 2);
  });

  it('batches queued requests into one prepare when the pipeline is full', () => {
    // Proves batching: with a pipeline of one, requests that arrive during a write share the
    // next prepare, and all are applied in arrival order.
    const t = new Cluster(1, { pipeline: 1 });
    for (let c = 1; c <= 20; c++) t.request(0, request(client(c), 0));
    assert.equal(t.node(0).unsynced.length, 1);
    t.sync(0);
    assert.equal(t.node(0).journal.length, 1);
    assert.equal(t.node(0).unsynced.length, 1);
    assert.equal(t.node(0).unsynced[0]?.header.requestCount, 19);
    t.sync(0);
    assert.equal(t.takeReplies().length, 20);
    assert.equal(t.node(0).replica.clientTable.size, 20);
  });

  it('evicts the least recently committed session past the bound, deterministically', () => {
    // Proves the client table is bounded and that eviction is reported to the evicted client.
    const t = new Cluster(1, { sessions: 2 });
    for (let c = 1; c <= 2; c++) {
      t.request(0, request(client(c), 0));
      t.sync(0);
    }
    t.request(0, request(client(1), 1));
    t.sync(0);
    t.takeReplies();
    t.request(0, request(client(3), 0));
    t.sync(0);
    const effects = t.takeReplies();
    const evicted = effects.find((e) => e.kind === 'reject');
    assert.ok(evicted && evicted.kind === 'reject');
    assert.equal(evicted.clientId, client(2));
    assert.equal(evicted.code, errorCodes.session_evicted);
    t.request(0, request(client(2), 1));
    const after = t.takeReplies()[0];
    assert.ok(after?.kind === 'reject' && after.code === errorCodes.session_not_registered);
  });

  it('rebuilds state and sessions by replaying its journal', () => {
    // Proves restart: replaying the durable prepares restores the state machine and the client
    // table, so a duplicate sent after the restart still gets its cached reply.
    const t = new Cluster(1);
    t.request(0, request(client(1), 0));
    t.sync(0);
    t.request(0, request(client(1), 1, 3));
    t.sync(0);
    const journal = t.node(0).journal;
    const fresh = makeNode(0, 1);
    for (const prepare of journal) fresh.replica.onRecoveredPrepare(prepare);
    fresh.replica.finishRecovery();
    assert.equal(fresh.machine.total, 3);
    assert.equal(fresh.replica.op, 2);
    const effects = fresh.replica.onRequest(request(client(1), 1, 3));
    assert.equal(effects.length, 1);
    assert.equal(effects[0]?.kind, 'reply');
    assert.equal(fresh.machine.applied, 1);
    const next = fresh.replica.onRequest(request(client(1), 2, 4));
    assert.equal(next[0]?.kind, 'journal_append');
    if (next[0]?.kind === 'journal_append') {
      assert.deepEqual(next[0].prepare.header.parent, journal[1]?.header.checksum);
      assert.ok(next[0].prepare.header.timestampUs > (journal[1]?.header.timestampUs ?? 0));
    }
  });
});

describe('replica, three replicas (normal operation)', () => {
  it('commits only with a quorum and backups apply the same commands', () => {
    // Proves the quorum rule and that backups converge on the primary's state.
    const t = new Cluster(3);
    t.request(0, request(client(1), 0));
    t.sync(0);
    assert.equal(t.takeReplies().length, 0, 'the primary alone is not a quorum');
    t.deliver();
    t.sync(1);
    t.deliver();
    assert.equal(t.takeReplies().length, 1, 'primary + one backup is a quorum');
    for (let n = 1; n <= 5; n++) {
      t.request(0, request(client(1), n, n));
      t.settle();
    }
    for (let tick = 0; tick < 20; tick++) t.perform(t.node(0), t.node(0).replica.onTick());
    t.deliver();
    for (const i of [0, 1, 2]) {
      assert.equal(t.node(i).machine.total, 15, `replica ${i} applied everything`);
      assert.equal(t.node(i).replica.commitMin, 6);
    }
  });

  it('refuses requests on a backup with the leader as a hint', () => {
    // Proves a backup never prepares and tells the client where the leader is.
    const t = new Cluster(3);
    t.request(1, request(client(1), 0));
    const reply = t.takeReplies()[0];
    assert.ok(reply?.kind === 'reject');
    assert.equal(reply.code, errorCodes.not_leader);
    assert.equal(reply.leaderHint, 0);
  });
});
