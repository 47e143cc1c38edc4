// A deterministic, in-memory harness for scenario tests of the replica (HOUSE_RULES §8), in a
// small test language:
//
//   const t = new Scenario({ replicaCount: 3 });
//   const c = t.client();
//   c.register();
//   t.replica(0).crash();
//   c.command(4);
//   t.runUntil(() => c.idle, 'the command is answered');
//   t.expectCommitted(2);
//   t.expectSafe();
//
// Each replica runs through the production EffectDriver (effect_driver.ts), the one place that
// maps effects to duties, with simulated sinks (testing_sinks.test-support.ts): a journal per
// replica (writes visible at once, durable when synced; a crash loses what was not synced), a
// superblock, journal reads, and a network that delivers in order unless a partition drops the
// message. Every input reaches a replica through its driver (node.driver); a test that calls the
// replica directly gets effects that nobody performs, to inspect them. Time advances in ticks;
// within a tick, rounds of (complete storage, deliver messages) run until nothing is left to do,
// so message latency is zero and runs are exactly reproducible. Clients follow leader hints,
// retry on timeouts and record every reply, so the safety checks (expectSafe) can compare what
// was acknowledged with what every replica committed.

import { assert } from '../core/assert.js';
import { checksumEqual, toHex } from '../core/checksum.js';
import { errorCodes } from '../core/errors.js';
import { makePrepare, rootPrepare } from '../core/header.js';
import type { Prepare } from '../core/header.js';
import {
  asClientId,
  asOp,
  asReplicaIndex,
  asRequestNumber,
  asTimestampUs,
  asView,
} from '../core/types.js';
import type { ClientId } from '../core/types.js';
import { decodeBatch, encodeBatch } from './batch.js';
import type { Request } from './batch.js';
import type { Effect, ReplicaMessage } from './message.js';
import { Replica } from './replica.js';
import type { Canary, ReplicaOptions } from './replica.js';
import { Counter, SimNode, testCluster, testRoot } from './testing_sinks.test-support.js';
import type { HarnessWires } from './testing_sinks.test-support.js';

export { Counter, SimNode, testCluster, testRoot } from './testing_sinks.test-support.js';

export interface ScenarioOptions {
  readonly replicaCount: number;
  readonly pipeline?: number;
  readonly sessions?: number;
  /** A deliberate bug, switched on in every replica (or in those listed). */
  readonly canary?: Canary;
  readonly canaryReplicas?: readonly number[];
  readonly scrubReadsPerTickMax?: number;
  readonly heartbeatTicks?: number;
  readonly electionTimeoutTicks?: number;
  /** Ticks a client waits for an answer before trying again (another replica). */
  readonly clientRetryTicks?: number;
  /** Seeds the replicas' PRNGs and the fault decisions. */
  readonly seed?: number;
  /** Cluster clock synchronisation (ReplicaOptions.clockSync). */
  readonly clockSync?: boolean;
  /** How far each replica's wall clock is off from the start, in microseconds. */
  readonly clockOffsetsUs?: readonly number[];
}

interface InFlight {
  readonly from: number;
  readonly to: number;
  readonly message: ReplicaMessage;
}

export interface Acknowledged {
  readonly clientId: ClientId;
  readonly requestNumber: number;
  readonly op: number;
}

/** A client: one request at a time, follows leader hints, retries the same request number. */
export class SimClient {
  readonly id: ClientId;
  requestNumber = -1;
  private readonly queue: Request[] = [];
  inflight: Request | null = null;
  target = 0;
  private sentTick = 0;
  readonly replies: Acknowledged[] = [];
  readonly rejects: string[] = [];
  /** Replies to drop before they reach this client (a lost reply), counted down. */
  dropReplies = 0;
  /** Replicas this client cannot reach (its requests to them are lost). */
  readonly unreachable = new Set<number>();

  constructor(
    private readonly t: Scenario,
    index: number,
  ) {
    this.id = asClientId(index.toString(16).padStart(32, '0'));
  }

  get idle(): boolean {
    return this.inflight === null && this.queue.length === 0;
  }

  register(): this {
    this.requestNumber += 1;
    assert(this.requestNumber === 0, 'register first');
    const request: Request = {
      clientId: this.id,
      requestNumber: asRequestNumber(0),
      operation: 'register',
      body: new Uint8Array(),
    };
    this.queue.push(request);
    this.pump();
    return this;
  }

  /** A command adding `value`; its second byte tags it (request number) for the checks. */
  command(value: number): this {
    this.requestNumber += 1;
    const request: Request = {
      clientId: this.id,
      requestNumber: asRequestNumber(this.requestNumber),
      operation: 'command',
      body: Uint8Array.of(value, this.requestNumber & 0xff),
    };
    this.queue.push(request);
    this.pump();
    return this;
  }

  private pump(): void {
    if (this.inflight !== null) return;
    const next = this.queue.shift();
    if (next === undefined) return;
    this.inflight = next;
    this.send();
  }

  send(): void {
    assert(this.inflight !== null);
    this.sentTick = this.t.now;
    if (!this.unreachable.has(this.target)) this.t.deliverRequest(this.target, this.inflight);
  }

  onReply(requestNumber: number, op: number): void {
    if (this.inflight === null || this.inflight.requestNumber !== requestNumber) return;
    if (this.dropReplies > 0) {
      this.dropReplies -= 1;
      return;
    }
    this.replies.push({ clientId: this.id, requestNumber, op });
    this.inflight = null;
    this.pump();
  }

  onReject(requestNumber: number, code: string, leaderHint: number): void {
    if (this.inflight === null || this.inflight.requestNumber !== requestNumber) return;
    this.rejects.push(code);
    if (code === errorCodes.not_leader && leaderHint >= 0) {
      this.target = leaderHint;
      this.send();
      return;
    }
    if (code === errorCodes.not_ready || code === errorCodes.backpressure) {
      this.sentTick = this.t.now - this.t.clientRetryTicks + 5; // Retry in a few ticks.
      return;
    }
    this.inflight = null; // A final answer (a session error): give up on this request.
    this.pump();
  }

  onTick(): void {
    if (this.inflight === null || this.t.now - this.sentTick < this.t.clientRetryTicks) return;
    this.target = (this.target + 1) % this.t.nodes.length;
    this.send();
  }
}

/** Network faults, each decided per message by the scenario's seeded randomness. */
export interface NetworkFaults {
  readonly dropProbability: number;
  readonly duplicateProbability: number;
  readonly delayProbability: number;
  readonly delayTicksMax: number;
}

/** A small seeded generator (mulberry32) for fault decisions. */
export function seededRandom(seed: number): () => number {
  let state = seed | 0;
  return () => {
    state = (state + 0x6d2b79f5) | 0;
    let z = state;
    z = Math.imul(z ^ (z >>> 15), z | 1);
    z ^= z + Math.imul(z ^ (z >>> 7), z | 61);
    return ((z ^ (z >>> 14)) >>> 0) / 0x1_0000_0000;
  };
}

export class Scenario {
  readonly nodes: SimNode[];
  faults: NetworkFaults | null = null;
  readonly random: () => number;
  private delayed: { releaseTick: number; item: InFlight }[] = [];
  readonly clients: SimClient[] = [];
  now = 0;
  readonly clientRetryTicks: number;
  private network: InFlight[] = [];
  /** Replica index → partition group; messages between groups are dropped. */
  private groups: number[];
  /** Rewrites (or drops, with null) messages in flight: a fault injector for tests. */
  tamper: ((message: InFlight) => ReplicaMessage | null) | null = null;
  /** Views sent or persisted beyond the u32 the wire and the superblock hold. */
  readonly unencodable: string[] = [];
  readonly sent: InFlight[] = [];
  recordSent = false;
  /** What every replica's sinks reach: the network, the clients and the safety record. */
  private readonly wires: HarnessWires = {
    send: (from, to, message) => {
      this.network.push({ from, to, message });
      if (this.recordSent) this.sent.push({ from, to, message });
    },
    reply: (reply) => this.clientOf(reply.clientId)?.onReply(reply.requestNumber, reply.op),
    reject: (rejection) =>
      this.clientOf(rejection.clientId)?.onReject(
        rejection.requestNumber,
        rejection.code,
        rejection.leaderHint,
      ),
    unencodable: (what) => this.unencodable.push(what),
  };

  constructor(readonly options: ScenarioOptions) {
    this.clientRetryTicks = options.clientRetryTicks ?? 60;
    this.random = seededRandom(options.seed ?? 1);
    this.nodes = Array.from({ length: options.replicaCount }, (_, i) => new SimNode(i));
    this.groups = this.nodes.map(() => 0);
    for (const node of this.nodes) {
      node.clockOffsetUs = options.clockOffsetsUs?.[node.index] ?? 0;
      this.start(node, true);
    }
  }

  replica(index: number): ReplicaHandle {
    const node = this.nodes[index];
    assert(node !== undefined, `no replica ${index}`);
    return new ReplicaHandle(this, node);
  }

  client(): SimClient {
    const client = new SimClient(this, this.clients.length + 1);
    this.clients.push(client);
    return client;
  }

  replicaOptions(node: SimNode): ReplicaOptions<number> {
    const o = this.options;
    const canaryOn =
      o.canary !== undefined &&
      (o.canaryReplicas === undefined || o.canaryReplicas.includes(node.index));
    let seed = (o.seed ?? 0) ^ 0x2545f491 ^ Math.imul(node.index + 1, 0x9e3779b9);
    const sb = node.storage.superblock;
    return {
      cluster: testCluster,
      replica: asReplicaIndex(node.index),
      replicaCount: o.replicaCount,
      stateMachine: node.machine,
      realtimeUs: () => this.realtimeUs() + node.clockOffsetUs,
      view: asView(sb.view),
      logView: asView(sb.logView),
      commit: asOp(sb.commit),
      rootChecksum: testRoot,
      prng: {
        float: () => {
          seed = (Math.imul(seed ^ (seed >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) | 0;
          return ((seed ^ (seed >>> 12)) >>> 0) / 0x1_0000_0000;
        },
      },
      pipelinePrepareCountMax: o.pipeline ?? 8,
      // Scenarios pin the shape of each prepare: no waiting for fuller batches.
      prepareBatchRequestCountMin: 1,
      clientSessionCountMax: o.sessions ?? 64,
      heartbeatTicks: o.heartbeatTicks ?? 10,
      electionTimeoutTicks: o.electionTimeoutTicks ?? 50,
      viewChangeTimeoutTicks: 100,
      scrubReadsPerTickMax: o.scrubReadsPerTickMax ?? 0,
      clockSync: o.clockSync ?? false,
      ...(canaryOn && o.canary !== undefined ? { canary: o.canary } : {}),
    };
  }

  /** The true wall time: 10 ms per tick. */
  realtimeUs(): number {
    return 1_700_000_000_000_000 + this.now * 10_000;
  }

  /** Starts (or restarts) a replica from its storage: replay, then finish recovery. */
  start(node: SimNode, intactOverride?: boolean): void {
    node.machine = new Counter();
    node.applied = new Set();
    const driver = node.run(new Replica<number>(this.replicaOptions(node)), this.wires);
    const { prepares, intact } = node.storage.replay();
    for (const prepare of prepares) driver.recoveredPrepare(prepare);
    const journalIntact = intactOverride ?? intact;
    const formatted = !node.started;
    node.started = true;
    driver.finishRecovery({ journalIntact, formatted });
  }

  private clientOf(clientId: ClientId): SimClient | undefined {
    return this.clients.find((c) => c.id === clientId);
  }

  /**
   * Delivers `message` to replica `to` now, as if a peer sent it (a forged or extreme message,
   * say), and performs its effects; returns them for the test to inspect.
   */
  inject(to: number, message: ReplicaMessage): readonly Effect<number>[] {
    const node = this.nodes[to];
    assert(node !== undefined && node.alive, `replica ${to} runs`);
    return node.driver.message(message);
  }

  deliverRequest(target: number, request: Request): void {
    const node = this.nodes[target];
    if (node === undefined || !node.alive) return;
    node.driver.request(request);
  }

  linked(a: number, b: number): boolean {
    return this.groups[a] === this.groups[b];
  }

  /** Messages between groups are dropped until heal(). */
  partition(...groups: number[][]): void {
    groups.forEach((group, index) => {
      for (const replica of group) this.groups[replica] = index + 1;
    });
  }

  heal(): void {
    this.groups = this.nodes.map(() => 0);
  }

  /** One round: complete storage work, deliver the messages sent so far. True if work was done. */
  private round(): boolean {
    let busy = false;
    for (const node of this.nodes) busy = this.completeStorage(node) || busy;
    const batch = this.network;
    this.network = [];
    for (const item of batch) {
      busy = true;
      if (this.faults !== null && this.faulty(item)) continue;
      const node = this.nodes[item.to];
      if (node === undefined || !node.alive || !this.linked(item.from, item.to)) continue;
      const message = this.tamper === null ? item.message : this.tamper(item);
      if (message === null) continue;
      node.driver.message(message);
    }
    return busy;
  }

  /** Applies network faults to a message; true when it is not delivered now. */
  private faulty(item: InFlight): boolean {
    const faults = this.faults;
    if (faults === null) return false;
    if (this.random() < faults.dropProbability) return true;
    if (this.random() < faults.duplicateProbability) {
      const releaseTick = this.now + 1 + Math.floor(this.random() * faults.delayTicksMax);
      this.delayed.push({ releaseTick, item });
    }
    if (this.random() < faults.delayProbability) {
      const releaseTick = this.now + 1 + Math.floor(this.random() * faults.delayTicksMax);
      this.delayed.push({ releaseTick, item });
      return true;
    }
    return false;
  }

  private releaseDelayed(): void {
    const due = this.delayed.filter((d) => d.releaseTick <= this.now);
    this.delayed = this.delayed.filter((d) => d.releaseTick > this.now);
    for (const { item } of due) this.network.push(item);
  }

  private completeStorage(node: SimNode): boolean {
    if (!node.alive) return false;
    const driver = node.driver;
    let busy = false;
    if (!node.syncStalled) {
      for (const { op, checksum } of node.storage.sync()) {
        busy = true;
        driver.journalDurable(asOp(op), checksum);
      }
      const superblock = node.storage.pendingSuperblock;
      if (superblock !== null) {
        busy = true;
        node.storage.superblock = superblock;
        node.storage.pendingSuperblock = null;
        driver.superblockDurable();
      }
    }
    const reads = node.storage.pendingReads;
    node.storage.pendingReads = [];
    for (const read of reads) {
      busy = true;
      driver.journalRead(read.op, node.storage.read(read.op, read.checksum), read.context);
    }
    return busy;
  }

  /** Advances time by `ticks`, settling all work within each tick. */
  run(ticks = 1): void {
    for (let i = 0; i < ticks; i++) {
      this.settle();
      this.now += 1;
      this.releaseDelayed();
      for (const node of this.nodes) {
        if (node.alive) node.driver.tick();
      }
      for (const client of this.clients) client.onTick();
      this.settle();
    }
  }

  settle(): void {
    for (let rounds = 0; this.round(); rounds++) {
      assert(rounds < 1_000_000, 'the cluster never quiesces within a tick');
    }
  }

  runUntil(condition: () => boolean, what: string | (() => string), ticksMax = 5_000): number {
    const start = this.now;
    this.settle();
    while (!condition()) {
      if (this.now - start >= ticksMax) {
        const label = typeof what === 'string' ? what : what();
        assert(false, `timed out after ${ticksMax} ticks waiting for: ${label}`);
      }
      this.run(1);
    }
    return this.now - start;
  }

  /** The normal primary of the highest view, if any. */
  primary(): SimNode | null {
    let best: SimNode | null = null;
    for (const node of this.nodes) {
      const r = node.replica;
      if (r === null || r.status !== 'normal' || !r.isPrimary) continue;
      if (best === null || r.view > best.r.view) best = node;
    }
    return best;
  }

  expectCommitted(op: number, replicas: readonly number[] = this.liveIndexes()): void {
    for (const index of replicas) {
      const r = this.replica(index).node.r;
      assert(r.commitMin >= op, `replica ${index} committed ${r.commitMin}, expected ${op}`);
    }
  }

  liveIndexes(): number[] {
    return this.nodes.filter((n) => n.alive).map((n) => n.index);
  }

  /**
   * The safety properties, as violations (empty when safe):
   *   - every replica's executed log is a prefix of one history (same checksum at every op);
   *   - every acknowledged request is in that history, at the op its reply named;
   *   - no request was applied twice on any replica;
   *   - replicas that executed the same ops hold the same state;
   *   - no replica sent or persisted a view the wire and the superblock cannot hold (a u32).
   */
  violations(): string[] {
    const found: string[] = [...this.unencodable];
    const history = new Map<number, { checksum: Uint8Array; replica: number }>();
    for (const node of this.nodes.filter((n) => n.alive)) {
      for (let op = 1; op <= node.r.commitMin; op++) {
        const slot = node.storage.slots.get(op);
        if (slot === undefined || slot.corrupt) continue;
        const known = history.get(op);
        if (known === undefined)
          history.set(op, { checksum: slot.prepare.header.checksum, replica: node.index });
        else if (!checksumEqual(known.checksum, slot.prepare.header.checksum)) {
          found.push(
            `op ${op}: replicas ${known.replica} and ${node.index} committed different prepares`,
          );
        }
      }
    }
    for (const client of this.clients) {
      for (const ack of client.replies) found.push(...this.checkAcknowledged(ack, history));
    }
    for (const node of this.nodes) {
      for (const key of node.appliedTwice) found.push(`replica ${node.index} applied ${key} twice`);
    }
    found.push(...this.stateDivergence());
    return found;
  }

  private checkAcknowledged(
    ack: Acknowledged,
    history: Map<number, { checksum: Uint8Array; replica: number }>,
  ): string[] {
    const holder = this.nodes.find((n) => n.alive && n.r.commitMin >= ack.op);
    if (holder === undefined) return [];
    const slot = holder.storage.slots.get(ack.op);
    if (slot === undefined || slot.corrupt) return [];
    const known = history.get(ack.op);
    if (known === undefined) return [];
    const requests = decodeBatch(slot.prepare.body);
    const there = requests.some(
      (q) => q.clientId === ack.clientId && q.requestNumber === ack.requestNumber,
    );
    if (there) return [];
    return [`acknowledged request ${ack.clientId}#${ack.requestNumber} is not at op ${ack.op}`];
  }

  private stateDivergence(): string[] {
    const byCommit = new Map<number, { total: number; replica: number }>();
    const found: string[] = [];
    for (const node of this.nodes.filter((n) => n.alive)) {
      const commit = node.r.commitMin;
      const known = byCommit.get(commit);
      if (known === undefined)
        byCommit.set(commit, { total: node.machine.total, replica: node.index });
      else if (known.total !== node.machine.total) {
        found.push(
          `at commit ${commit} replicas ${known.replica} and ${node.index} differ in state`,
        );
      }
    }
    return found;
  }

  expectSafe(): void {
    const violations = this.violations();
    assert(violations.length === 0, `safety violations:\n${violations.join('\n')}`);
  }

  /**
   * Gives replicas `indexes` a committed history of `opCount` ops (one command each, from one
   * registered client) directly on their disks, as if they had run it, for tests that need a long
   * history quickly. Call on a fresh scenario, then restart those replicas.
   */
  seedHistory(opCount: number, indexes: readonly number[]): SimClient {
    const client = this.client();
    client.requestNumber = opCount - 1;
    let previous = rootPrepare(testCluster);
    const prepares: Prepare[] = [];
    for (let op = 1; op <= opCount; op++) {
      const request: Request =
        op === 1
          ? {
              clientId: client.id,
              requestNumber: asRequestNumber(0),
              operation: 'register',
              body: new Uint8Array(),
            }
          : {
              clientId: client.id,
              requestNumber: asRequestNumber(op - 1),
              operation: 'command',
              body: Uint8Array.of(1, (op - 1) & 0xff),
            };
      previous = makePrepare(
        {
          replica: asReplicaIndex(0),
          cluster: testCluster,
          view: asView(0),
          requestCount: 1,
          op: asOp(op),
          commit: asOp(op - 1),
          timestampUs: asTimestampUs(1_600_000_000_000_000 + op),
          parent: previous.header.checksum,
        },
        encodeBatch([request]),
      );
      prepares.push(previous);
    }
    for (const index of indexes) {
      const storage = this.replica(index).node.storage;
      for (const prepare of prepares) {
        storage.slots.set(prepare.header.op, {
          prepare,
          corrupt: false,
          durable: true,
          underneath: null,
        });
      }
      storage.superblock = { view: 0, logView: 0, commit: opCount };
    }
    return client;
  }
}

export class ReplicaHandle {
  constructor(
    readonly t: Scenario,
    readonly node: SimNode,
  ) {}

  get r(): Replica<number> {
    return this.node.r;
  }

  /** The process dies: unsynced writes are lost, messages to it are dropped. */
  crash(): this {
    this.node.stop();
    this.node.syncStalled = false;
    this.node.storage.crash();
    return this;
  }

  /** Restarts from disk; `journalIntact` overrides what the replay found. */
  restart(journalIntact?: boolean): this {
    assert(!this.node.alive, 'restart a crashed replica');
    this.t.start(this.node, journalIntact);
    return this;
  }

  /** Cuts this replica off from every other one. */
  isolate(): this {
    const others = this.t.nodes.map((n) => n.index).filter((i) => i !== this.node.index);
    this.t.partition([this.node.index], others);
    return this;
  }

  /** Flips a bit in the body of the journal record of `op` (its checksums then fail). */
  corrupt(op: number): this {
    const slot = this.node.storage.slots.get(op);
    assert(slot !== undefined, `replica ${this.node.index} has no op ${op}`);
    slot.corrupt = true;
    return this;
  }

  hex(op: number): string {
    const slot = this.node.storage.slots.get(op);
    return slot === undefined ? '-' : toHex(slot.prepare.header.checksum).slice(0, 8);
  }
}
