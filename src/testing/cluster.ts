// The cluster harness: real Replicas over the real kernel, wired to simulated time, network,
// storage and clocks, and driven by simulated clients. It plays the node shell's part through
// the node's own effect driver (src/vsr/effect_driver.ts): each running replica has an
// EffectDriver (SimNode.driver, built in start() by sim_sinks.ts createSimDriver) whose sinks
// perform its effects in order in the simulated world — appends go to the simulated disk and are
// reported durable (driver.journalDurable) only when their write completes; sends go to the
// network, deep-copied; replies and rejections go back to the clients over the network. So the
// simulator maps effects to duties with the very switch the node runs; it has none of its own.
// Every effect (through the driver's observer) and every delivered packet is folded into the
// run's trace hash.
//
// One tick: inject faults (if on), restart replicas whose downtime is over, tick every running
// replica, run everything due on the agenda (packets, disk completions) in scheduling order,
// then let every client act. Sends are performed as they come, never held back until a
// journal write of the same batch completes: the replica alone must order "durable, then
// acknowledge", so a replica that does not (the ack_before_fsync canary) is caught here.
//
// Reads are served by the simulator at the replica that receives them, from that replica's
// executed state (its mirrored streams), under the node's own read rules (src/node/read_gate.ts,
// one ReadGate per incarnation, fed by the driver): a linearizable read only at a primary that
// hears a quorum and has executed its view's log, a stale read at any normal replica within a
// lag bound. An exception from any replica entry point (an assertion in replica or kernel code)
// ends the run as a `crash` (the driver's enter hook), and so does a message the node's codec
// could not encode, or a superblock view beyond its u32: the node's shell would die on them
// (issue 14: a forged view of 2^32-1 did exactly that).

import { assert } from '../core/assert.js';
import { errorCodes } from '../core/errors.js';
import type { ErrorCode } from '../core/errors.js';
import { clusterIdFromName, rootPrepare } from '../core/header.js';
import { asStreamId } from '../core/types.js';
import type { ReadConsistency } from '../node/read_gate.js';
import { encodeReplicaMessage } from '../net/replica_codec.js';
import type { ReplicaMessage } from '../vsr/message.js';
import { SafetyChecker } from './checkers.js';
import { deepCopy, flipPrepareBit, TraceHash } from './deep.js';
import type { FaultClass, RunPlan } from './fault_plan.js';
import { Forger } from './forger.js';
import { Prng } from './prng.js';
import { createReplica } from './replica_adapter.js';
import type { CanaryName, RecoveryReport } from './replica_adapter.js';
import { Agenda } from './scheduler.js';
import { SimClock } from './sim_clock.js';
import { SimNetwork } from './sim_network.js';
import { SimNode } from './sim_node.js';
import { createSimDriver, ReplicaCrash } from './sim_sinks.js';
import type { DiskCompletion, SimWorld } from './sim_sinks.js';
import { durableKey, SimStorage } from './sim_storage.js';
import { SimClient, Workload } from './workload.js';
import type { ClientToReplica, ReplicaToClient } from './workload.js';

type AgendaItem =
  | { kind: 'replica_packet'; from: number; to: number; epoch: number; message: ReplicaMessage }
  | { kind: 'client_packet'; client: number; to: number; epoch: number; message: ClientToReplica }
  | { kind: 'client_delivery'; client: number; from: number; message: ReplicaToClient }
  | DiskCompletion;

/**
 * Deliberate bugs in the simulated SHELL (not the replica), for the checkers' own tests: each
 * breaks one guarantee the shell gives, so that one checker must fire. Never set by `vopr`.
 *   durable_before_fsync  onJournalDurable is called as soon as a write starts;
 *   forget_journal        a (re)started replica's disk loses the whole journal;
 *   apply_twice           replica 1's state machine applies every command twice;
 *   stale_reads           linearizable reads are answered without the stream's last event;
 *   wrong_stale_reads     stale reads are answered with a different first event.
 */
export type ShellMutation =
  'durable_before_fsync' | 'forget_journal' | 'apply_twice' | 'stale_reads' | 'wrong_stale_reads';

export interface ClusterOptions {
  readonly seed: number;
  readonly replicaCount: number;
  readonly faults: ReadonlySet<FaultClass>;
  readonly canary: CanaryName | null;
  readonly plan: RunPlan;
  /** Forks of the run's PRNG, one per subsystem. */
  readonly prng: Prng;
  readonly mutation?: ShellMutation | undefined;
}

/** The lag bound of the workload's stale reads (the SDK's `lagOpsMax`). */
export const staleLagOpsMax = 10;

export class Cluster {
  readonly agenda = new Agenda<AgendaItem>();
  readonly nodes: SimNode[];
  readonly clients: SimClient[];
  readonly workload: Workload;
  readonly network: SimNetwork;
  readonly checker: SafetyChecker;
  readonly trace = new TraceHash();
  /** Replica events by kind, for the run's statistics. */
  readonly eventCounts = new Map<string, number>();
  readonly stats = { delivered: 0, droppedAtDeadNode: 0, reads: 0, statusChanges: 0 };
  faultsOn = true;
  private readonly faultPrng: Prng;
  private readonly cluster = clusterIdFromName('vopr');
  private readonly rootChecksum: Uint8Array;
  private readonly clientsById = new Map<string, SimClient>();
  readonly quorum: number;
  /** The `forge` fault class: a stranger sending forged and extreme messages (forger.ts). */
  readonly forger: Forger | null;
  /** What the simulated sinks of every replica's driver act on (sim_sinks.ts). */
  private readonly world: SimWorld;

  constructor(private readonly options: ClusterOptions) {
    const { plan, prng, replicaCount } = options;
    this.quorum = Math.floor(replicaCount / 2) + 1;
    this.rootChecksum = rootPrepare(this.cluster).header.checksum;
    this.checker = new SafetyChecker(this.quorum, (op, checksum) =>
      this.durableCount(op, checksum),
    );
    this.network = new SimNetwork(prng.fork(), plan.network);
    this.faultPrng = prng.fork();
    this.nodes = Array.from({ length: replicaCount }, (_, i) => {
      const faulty = plan.corruptibleReplicas.includes(i);
      const storageOptions = faulty ? plan.storage : { ...plan.storage, readFaultProbability: 0 };
      const storage = new SimStorage(prng.fork(), storageOptions);
      const applyTwice = options.mutation === 'apply_twice' && i === 1;
      const clock = new SimClock(prng.fork(), plan.clock);
      return new SimNode(i, storage, clock, prng.fork(), this.checker, applyTwice);
    });
    this.workload = new Workload(prng.fork(), plan.workload);
    const transport = {
      send: (c: number, r: number, m: ClientToReplica) => this.clientSend(c, r, m),
    };
    this.clients = Array.from(
      { length: plan.workload.clientCount },
      (_, i) => new SimClient(i, replicaCount, this.workload, transport),
    );
    for (const client of this.clients) this.clientsById.set(client.id, client);
    // Forked last, and only with `forge`: runs without it draw exactly what they drew before.
    const forging = options.faults.has('forge');
    this.forger = forging ? new Forger(prng.fork(), replicaCount, this.cluster) : null;
    this.world = this.simWorld();
    for (const node of this.nodes) this.start(node);
  }

  get now(): number {
    return this.agenda.now;
  }

  private simWorld(): SimWorld {
    return {
      trace: this.trace,
      checker: this.checker,
      eventCounts: this.eventCounts,
      stats: this.stats,
      durableBeforeFsync: this.options.mutation === 'durable_before_fsync',
      now: () => this.now,
      schedule: (delayTicks, completion) => this.agenda.schedule(delayTicks, completion),
      replicaSend: (from, to, message) => this.replicaSend(from, to, message),
      toClient: (from, clientId, message) => this.toClient(from, clientId, message),
    };
  }

  private durableCount(op: number, checksum: Uint8Array): number {
    const key = durableKey(op, checksum);
    return this.nodes.filter((n) => n.storage.everDurable.has(key)).length;
  }

  // ----- the loop -----

  tick(): void {
    const now = ++this.agenda.now;
    this.checker.tick = now;
    if (this.faultsOn) this.injectFaults(now);
    for (const node of this.nodes) {
      if (node.restartTick !== null && now >= node.restartTick) this.start(node);
    }
    for (const node of this.nodes) node.driver?.tick();
    for (let item = this.agenda.popDue(now); item !== null; item = this.agenda.popDue(now)) {
      this.handle(item);
    }
    for (const client of this.clients) client.step(now);
  }

  private injectFaults(now: number): void {
    const plan = this.options.plan;
    this.network.step(now);
    for (const node of this.nodes) node.clock.step();
    const crash = plan.crash;
    if (crash !== null) {
      for (const node of this.nodes) {
        const down = this.nodes.filter((n) => !n.running).length;
        if (!node.running || down >= crash.downCountMax) continue;
        if (!this.faultPrng.chance(crash.crashProbability)) continue;
        node.crash();
        node.restartTick = now + this.faultPrng.exponential(crash.downTicksMean, 1);
      }
    }
    if (plan.corruptibleReplicas.length > 0 && this.faultPrng.chance(plan.corruptionProbability)) {
      const victim = this.nodes[this.faultPrng.pick(plan.corruptibleReplicas)];
      victim?.storage.corruptRandomRecord();
    }
    if (this.forger !== null) this.forge(this.forger);
  }

  /** Delivers one forged message (if the forger sends one this tick) straight to its target. */
  private forge(forger: Forger): void {
    const targets = this.nodes.flatMap((n) =>
      n.replica === null ? [] : [{ replica: n.index, view: n.replica.view }],
    );
    const forgery = forger.maybeForge(targets);
    if (forgery === null) return;
    const node = this.nodes[forgery.to];
    assert(node !== undefined && node.running, 'a forgery for a running replica');
    this.trace.add(forgery);
    node.runningDriver().message(forgery.message);
  }

  /** Ends every fault and restarts every crashed replica: the liveness phase begins. */
  heal(): void {
    this.faultsOn = false;
    this.network.heal();
    for (const node of this.nodes) {
      node.storage.heal(this.options.plan.storageHealed);
      node.clock.heal();
      if (!node.running) node.restartTick = this.now + 1;
    }
    this.workload.issuing = false;
  }

  /** True when every replica runs, every client is idle, and all replicas share one commit. */
  settled(): boolean {
    if (!this.clients.every((c) => c.idle)) return false;
    const commitMax = this.checker.committedOpMax;
    return this.nodes.every(
      (n) => n.replica !== null && n.replica.commitMin === Math.max(commitMax, 0),
    );
  }

  // ----- replicas -----

  /** Boots a replica process from its disk: superblock, then replay of the durable journal. */
  private start(node: SimNode): void {
    const stateMachine = node.boot();
    const replica = createReplica({
      cluster: this.cluster,
      replica: node.index,
      replicaCount: this.options.replicaCount,
      stateMachine,
      realtimeUs: () => node.clock.realtimeUs(this.agenda.now),
      rootChecksum: this.rootChecksum,
      superblock: node.storage.superblock,
      prng: node.prng.fork(),
      canary: this.options.canary,
      tuning: this.options.plan.tuning,
    });
    const driver = createSimDriver(node, replica, this.world);
    node.driver = driver;
    node.stats.starts += 1;
    if (node.restartTick !== null) node.stats.restarts += 1;
    node.restartTick = null;
    if (this.options.mutation === 'forget_journal') node.storage.truncate(0);
    const { prepares, intact } = node.storage.replay(this.rootChecksum);
    node.stats.replayed += prepares.length;
    for (const prepare of prepares) driver.recoveredPrepare(prepare);
    // `formatted`: only the very first start of a replica created its data directory.
    const report: RecoveryReport = {
      journalIntact: intact,
      formatted: node.stats.starts === 1,
    };
    driver.finishRecovery(report);
  }

  // ----- the network -----

  private replicaSend(from: number, to: number, message: ReplicaMessage): void {
    const target = this.nodes[to];
    assert(target !== undefined, 'send to a replica of this cluster');
    try {
      encodeReplicaMessage(message); // As the node's shell does before it sends.
    } catch (error) {
      throw new ReplicaCrash(from, `send (the codec refused a ${message.kind})`, error);
    }
    for (const delay of this.network.route(from, to, this.now)) {
      const copy = deepCopy(message);
      if (this.network.corrupts()) flipPrepareBit(copy, (n) => this.faultPrng.below(n));
      this.agenda.schedule(delay, {
        kind: 'replica_packet',
        from,
        to,
        epoch: target.epoch,
        message: copy,
      });
    }
  }

  private clientSend(client: number, to: number, message: ClientToReplica): void {
    const target = this.nodes[to];
    assert(target !== undefined, 'send to a replica of this cluster');
    const address = this.options.replicaCount + client;
    for (const delay of this.network.route(address, to, this.now)) {
      const item: AgendaItem = {
        kind: 'client_packet',
        client,
        to,
        epoch: target.epoch,
        message: deepCopy(message),
      };
      this.agenda.schedule(delay, item);
    }
  }

  private toClient(from: number, clientId: string, message: ReplicaToClient): void {
    const client = this.clientsById.get(clientId);
    assert(client !== undefined, 'a reply to a client of this run');
    const address = this.options.replicaCount + client.index;
    for (const delay of this.network.route(from, address, this.now)) {
      this.agenda.schedule(delay, {
        kind: 'client_delivery',
        client: client.index,
        from,
        message: deepCopy(message),
      });
    }
  }

  private handle(item: AgendaItem): void {
    if (item.kind === 'client_delivery') {
      this.trace.add(item);
      this.clients[item.client]?.onMessage(item.message, this.now);
      return;
    }
    const node =
      item.kind === 'replica_packet' || item.kind === 'client_packet'
        ? this.nodes[item.to]
        : this.nodes[item.replica];
    assert(node !== undefined, 'an agenda item for a replica of this cluster');
    if (node.replica === null || node.epoch !== item.epoch) {
      this.stats.droppedAtDeadNode += 1;
      return;
    }
    this.trace.add(item);
    this.stats.delivered += 1;
    const driver = node.runningDriver();
    switch (item.kind) {
      case 'replica_packet':
        driver.message(item.message);
        return;
      case 'client_packet':
        return this.onClientPacket(node, item.client, item.message);
      case 'write_done': {
        const prepare = node.storage.writeDone(item.writeId, item.op);
        if (prepare === null) return;
        return driver.journalDurable(prepare.header.op, prepare.header.checksum);
      }
      case 'read_done': {
        const prepare = node.storage.readForReplica(item.op, item.checksum);
        return driver.journalRead(item.op, prepare, item.context);
      }
      case 'superblock_done':
        if (!node.storage.superblockDone()) return;
        return driver.superblockDurable();
    }
  }

  private onClientPacket(node: SimNode, client: number, message: ClientToReplica): void {
    if (message.kind === 'request') {
      node.runningDriver().request(message.request);
      return;
    }
    const replica = node.replica;
    assert(replica !== null, 'a running replica serves reads');
    this.stats.reads += 1;
    const clientId = this.clients[client]?.id;
    assert(clientId !== undefined, 'a read from a client of this run');
    const { readId, streamId } = message;
    const consistency: ReadConsistency = message.stale
      ? { kind: 'stale', lagOpsMax: staleLagOpsMax }
      : { kind: 'linearizable' };
    let code: ErrorCode | null = node.readGate.refusal(replica, consistency)?.code ?? null;
    if (code === null && !node.state.streams.has(asStreamId(streamId))) {
      code = errorCodes.stream_not_found;
    }
    let answer: ReplicaToClient;
    if (code === null) {
      const events = [...(node.streams.get(streamId) ?? [])];
      const mutation = this.options.mutation;
      if (mutation === 'stale_reads' && !message.stale) events.pop();
      if (mutation === 'wrong_stale_reads' && message.stale && events.length > 0) events[0] = '?';
      answer = { kind: 'read_result', readId, events, code: null, leaderHint: -1 };
    } else {
      answer = {
        kind: 'read_result',
        readId,
        events: null,
        code,
        leaderHint: replica.primaryIndex,
      };
    }
    this.toClient(node.index, clientId, answer);
  }
}
