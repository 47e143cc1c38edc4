// Tests for the simulator's parts below the cluster harness: the agenda's ordering, deep copies
// and trace hashes, the simulated disk (durability, crash cuts, torn writes, corruption found by
// checksums, truncation, superblock) and the simulated network (FIFO, loss, partitions, heal).

import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { clusterIdFromName, makePrepare, rootPrepare } from '../core/header.js';
import type { Prepare } from '../core/header.js';
import { asOp, asReplicaIndex, asTimestampUs, asView } from '../core/types.js';
import { deepCopy, TraceHash } from './deep.js';
import { Prng } from './prng.js';
import { Agenda } from './scheduler.js';
import { benignLinks, SimNetwork } from './sim_network.js';
import type { NetworkOptions } from './sim_network.js';
import { durableKey, SimStorage } from './sim_storage.js';
import type { StorageOptions } from './sim_storage.js';

const cluster = clusterIdFromName('components');
const root = rootPrepare(cluster).header.checksum;

function chain(count: number): Prepare[] {
  const prepares: Prepare[] = [];
  let parent = root;
  for (let op = 1; op <= count; op++) {
    const prepare = makePrepare(
      {
        replica: asReplicaIndex(0),
        cluster,
        view: asView(0),
        requestCount: 1,
        op: asOp(op),
        commit: asOp(op - 1),
        timestampUs: asTimestampUs(1000 + op),
        parent,
      },
      Uint8Array.of(op, op, op),
    );
    prepares.push(prepare);
    parent = prepare.header.checksum;
  }
  return prepares;
}

const fixedLatency: StorageOptions = {
  writeLatencyMinTicks: 2,
  writeLatencyMaxTicks: 2,
  writeSpikeProbability: 0,
  writeSpikeTicksMax: 1,
  readLatencyMinTicks: 1,
  readLatencyMaxTicks: 1,
  crashWriteSurvivalProbability: 0,
  crashTornProbability: 0,
  crashSuperblockSurvivalProbability: 0,
  readFaultProbability: 0,
};

describe('Agenda', () => {
  it('runs entries by tick, then in scheduling order', () => {
    // Proves the total order that makes a seed replay identically.
    const agenda = new Agenda<string>();
    agenda.schedule(2, 'c');
    agenda.schedule(1, 'a');
    agenda.schedule(2, 'd');
    agenda.schedule(1, 'b');
    assert.equal(agenda.popDue(0), null);
    const order: string[] = [];
    for (let item = agenda.popDue(2); item !== null; item = agenda.popDue(2)) order.push(item);
    assert.deepEqual(order, ['a', 'b', 'c', 'd']);
  });
});

describe('deepCopy and TraceHash', () => {
  it('copies messages so that no array or object is shared', () => {
    // Proves the network's isolation: mutating a delivered copy leaves the original intact.
    const original = {
      kind: 'x',
      bytes: Uint8Array.of(1, 2),
      list: [{ n: 1 }],
      map: new Map([[1, [2]]]),
    };
    const copy = deepCopy(original);
    copy.bytes[0] = 9;
    (copy.list[0] as { n: number }).n = 5;
    copy.map.get(1)?.push(3);
    assert.deepEqual(original.bytes, Uint8Array.of(1, 2));
    assert.equal(original.list[0]?.n, 1);
    assert.deepEqual(original.map.get(1), [2]);
  });

  it('hashes equal values equally and is sensitive to order and content', () => {
    // Proves the trace hash distinguishes runs that differ and agrees on runs that do not.
    const h = (values: unknown[]): string => {
      const hash = new TraceHash();
      for (const value of values) hash.add(value);
      return hash.digest();
    };
    assert.equal(h([{ a: 1, b: Uint8Array.of(1) }, 'x']), h([{ a: 1, b: Uint8Array.of(1) }, 'x']));
    assert.notEqual(h(['x', 'y']), h(['y', 'x']));
    assert.notEqual(h([Uint8Array.of(1, 2)]), h([Uint8Array.of(1, 3)]));
    assert.notEqual(h([{ a: 1 }]), h([{ a: 2 }]));
    assert.notEqual(h([2 ** 40]), h([2 ** 40 + 1]));
  });
});

describe('SimStorage', () => {
  it('makes a write durable only when it completes, in write order', () => {
    // Proves durability follows the write latency and completions are FIFO.
    const storage = new SimStorage(new Prng(1), fixedLatency);
    const [p1, p2] = chain(2) as [Prepare, Prepare];
    const w1 = storage.write(p1, 10);
    const w2 = storage.write(p2, 11);
    assert.equal(w1.delayTicks, 2);
    assert.equal(w2.delayTicks, 2);
    assert.equal(storage.everDurable.size, 0);
    assert.equal(storage.read(1, null)?.header.op, 1, 'written data is readable before fsync');
    assert.equal(storage.writeDone(w1.writeId, 1), p1);
    assert.ok(storage.everDurable.has(durableKey(1, p1.header.checksum)));
    assert.throws(() => storage.writeDone(w1.writeId, 1), /in order/);
  });

  it('loses un-synced writes at a crash without storage faults', () => {
    // Proves a crash cuts the journal exactly at the durability point.
    const storage = new SimStorage(new Prng(1), fixedLatency);
    const prepares = chain(3);
    const writes = prepares.map((p) => storage.write(p, 0));
    storage.writeDone(writes[0]?.writeId ?? 0, 1);
    storage.crash();
    const replay = storage.replay(root);
    assert.deepEqual(
      replay.prepares.map((p) => p.header.op),
      [1],
    );
    assert.equal(replay.stop, 'end');
  });

  it('may keep or tear un-synced writes at a crash with storage faults', () => {
    // Proves the faulty crash: surviving writes become durable; a torn one stops the replay.
    const survive = new SimStorage(new Prng(1), {
      ...fixedLatency,
      crashWriteSurvivalProbability: 1,
    });
    for (const p of chain(3)) survive.write(p, 0);
    survive.crash();
    assert.equal(survive.replay(root).prepares.length, 3);
    assert.equal(survive.everDurable.size, 3, 'survivors count as durable evidence');
    const torn = new SimStorage(new Prng(1), { ...fixedLatency, crashTornProbability: 1 });
    for (const p of chain(2)) torn.write(p, 0);
    torn.crash();
    assert.deepEqual(torn.replay(root), { prepares: [], stop: 'torn_tail', intact: true });
    assert.equal(torn.read(1, null), null, 'the torn tail is truncated');
    assert.equal(torn.everDurable.size, 0, 'a torn write is never evidence of durability');
  });

  it('detects a corrupted record by its checksums, on read and at replay', () => {
    // Proves corruption is found the way the real journal finds it, not by a flag.
    const storage = new SimStorage(new Prng(4), fixedLatency);
    const prepares = chain(4);
    for (const p of prepares) {
      const { writeId } = storage.write(p, 0);
      storage.writeDone(writeId, p.header.op);
    }
    assert.ok(storage.corruptRandomRecord());
    const corrupt = [1, 2, 3, 4].filter((op) => storage.read(op, null) === null);
    assert.equal(corrupt.length, 1);
    const replay = storage.replay(root);
    assert.equal(replay.stop, 'corrupt');
    assert.equal(replay.prepares.length, (corrupt[0] ?? 0) - 1, 'replay stops at the bad record');
    assert.equal(storage.read(2, prepares[0]?.header.checksum ?? root), null, 'wrong checksum');
  });

  it('truncates above opMax and keeps the superblock until its write completes', () => {
    // Proves journal_truncate and superblock_write semantics, including loss at a crash.
    const storage = new SimStorage(new Prng(2), fixedLatency);
    for (const p of chain(3)) storage.writeDone(storage.write(p, 0).writeId, p.header.op);
    storage.truncate(1);
    assert.equal(storage.replay(root).prepares.length, 1);
    storage.startSuperblockWrite({ view: 2, logView: 2, commit: 1 });
    assert.equal(storage.superblock.view, 0);
    assert.ok(storage.superblockDone());
    assert.equal(storage.superblock.view, 2);
    storage.startSuperblockWrite({ view: 3, logView: 3, commit: 1 });
    storage.crash();
    assert.equal(storage.superblock.view, 2, 'a pending superblock write is lost in a crash');
  });
});

describe('SimNetwork', () => {
  const options = (overrides: Partial<NetworkOptions>): NetworkOptions => ({
    replicaCount: 3,
    clientCount: 1,
    delayMeanTicks: 5,
    delayMinTicks: 1,
    replicaLinks: benignLinks,
    clientLinks: benignLinks,
    partitionProbability: 0,
    unpartitionProbability: 0,
    partitionStabilityTicks: 0,
    partitionModes: ['isolate_single'],
    ...overrides,
  });

  it('keeps FIFO order on a link unless reordering is on', () => {
    // Proves links behave like TCP by default: arrival ticks never go backwards.
    const network = new SimNetwork(new Prng(8), options({}));
    let last = 0;
    for (let now = 0; now < 200; now++) {
      const [delay] = network.route(0, 1, now);
      assert.ok(delay !== undefined && delay >= 1);
      assert.ok(now + delay >= last);
      last = now + delay;
    }
  });

  it('drops everything across a partition, and nothing once healed', () => {
    // Proves partitions cut replica links (clients still reach every replica) and heal()
    // restores a benign network.
    const network = new SimNetwork(
      new Prng(9),
      options({ partitionProbability: 1, unpartitionProbability: 0, partitionModes: ['split'] }),
    );
    network.step(0);
    assert.notEqual(network.partitionDescription, 'none');
    const cut = [0, 1, 2].flatMap((a) =>
      [0, 1, 2].filter((b) => b !== a && network.route(a, b, 1).length === 0),
    );
    assert.ok(cut.length > 0);
    assert.equal(network.route(3, 0, 1).length, 1, 'clients are not partitioned');
    network.heal();
    for (const a of [0, 1, 2])
      for (const b of [0, 1, 2]) if (a !== b) assert.equal(network.route(a, b, 2).length, 1);
  });

  it('loses and duplicates packets at the configured rates', () => {
    // Proves loss and duplication are applied per packet.
    const lossy = {
      lossProbability: 0.5,
      duplicateProbability: 0.5,
      corruptProbability: 0,
      reorder: true,
    };
    const network = new SimNetwork(new Prng(10), options({ replicaLinks: lossy }));
    let copies = 0;
    for (let i = 0; i < 4000; i++) copies += network.route(0, 1, i).length;
    assert.ok(copies > 2600 && copies < 3400, `${copies} copies of 4000 packets`);
  });
});
