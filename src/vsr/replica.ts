// The replica as a pure, deterministic state machine (DESIGN.md §3, HOUSE_RULES §3). It is
// driven only through its entry points — onRequest (a client request), onMessage (a message from
// another replica), onJournalDurable (the shell finished writing and fdatasyncing a prepare),
// onRecoveredPrepare / finishRecovery (replaying the journal at start-up) and onTick (time) —
// and answers each with a list of effects for the shell to perform. It never reads a clock,
// a disk or a socket: wall-clock time comes from the injected `realtimeUs`, so that the same code
// runs in production and in the simulator.
//
// Normal operation (Viewstamped Replication Revisited, §4.1): the primary of view v is
// replica v mod n. It queues client requests, batches them into a prepare whose header chains to
// the previous prepare's checksum, appends it to its journal and sends it to the backups. A
// backup appends a prepare that continues its chain and, once it is durable, answers prepare_ok.
// The primary counts itself only after its own fdatasync; on a quorum it commits in op order,
// applies each request to the state machine, caches the reply in the client table and replies.
// Backups learn the commit number from the next prepare or from commit heartbeats.
//
// Invariants (checked by invariants() after every entry point):
//   commitMin <= commitMax <= op; the pipeline holds exactly the ops commitMax+1..op at the
//   primary; every in-flight request's client appears once in `pendingClients`.
// View change, recovery of uncommitted tails, repair and state transfer come with replication.

import { assert } from '../core/assert.js';
import { checksumEqual } from '../core/checksum.js';
import { constants } from '../core/constants.js';
import { errorCodes } from '../core/errors.js';
import type { ErrorCode } from '../core/errors.js';
import { bodyMatches, makePrepare } from '../core/header.js';
import type { Prepare } from '../core/header.js';
import { asOp, asReplicaIndex, asTimestampUs } from '../core/types.js';
import type {
  ClientId,
  Op,
  ReplicaIndex,
  RequestNumber,
  TimestampUs,
  View,
} from '../core/types.js';
import { decodeBatch, encodeBatch, requestOverheadBytes } from './batch.js';
import type { Request } from './batch.js';
import { ClientTable } from './client_table.js';
import type { Effect, Reply, ReplicaMessage, ReplicaStatus } from './message.js';

/** What the replica needs of the state machine it replicates (the kernel, in production). */
export interface StateMachine<Output> {
  /** Applies one committed command. Must be deterministic, and must not throw on bad input. */
  apply(
    body: Uint8Array,
    meta: { op: Op; timestampUs: TimestampUs; clientId: ClientId; requestIndex: number },
  ): { result: Uint8Array; output: Output };
}

export interface ReplicaOptions<Output> {
  readonly cluster: number;
  readonly replica: ReplicaIndex;
  readonly replicaCount: number;
  readonly stateMachine: StateMachine<Output>;
  /** Wall-clock microseconds; the primary timestamps prepares with it (kept monotonic). */
  readonly realtimeUs: () => number;
  /** Durable state from the superblock and journal. */
  readonly view: View;
  readonly rootChecksum: Uint8Array;
  readonly pipelinePrepareCountMax?: number;
  readonly prepareRequestCountMax?: number;
  readonly clientSessionCountMax?: number;
  readonly requestQueueCountMax?: number;
  readonly heartbeatTicks?: number;
}

interface PipelineEntry {
  readonly prepare: Prepare;
  readonly oks: Set<ReplicaIndex>;
}

export class Replica<Output> {
  readonly cluster: number;
  readonly replica: ReplicaIndex;
  readonly replicaCount: number;
  readonly quorum: number;
  status: ReplicaStatus = 'recovering';
  view: View;
  /** The highest op in this replica's log. */
  op: Op = asOp(0);
  /** The highest op known to be committed. */
  commitMax: Op = asOp(0);
  /** The highest op applied to the state machine. */
  commitMin: Op = asOp(0);
  headChecksum: Uint8Array;
  readonly clientTable: ClientTable;

  private readonly options: ReplicaOptions<Output>;
  private readonly pipeline: PipelineEntry[] = [];
  /** Prepares accepted by a backup and not yet applied, in op order. */
  private readonly uncommitted: Prepare[] = [];
  private readonly queue: Request[] = [];
  private readonly pendingClients = new Map<ClientId, RequestNumber>();
  private lastTimestampUs = 0;
  private ticks = 0;
  private effects: Effect<Output>[] = [];

  constructor(options: ReplicaOptions<Output>) {
    assert(options.replicaCount >= 1, 'at least one replica');
    assert(options.replicaCount <= constants.replicaCountMax, 'too many replicas');
    assert(options.replica < options.replicaCount, 'replica index out of range');
    this.options = options;
    this.cluster = options.cluster;
    this.replica = options.replica;
    this.replicaCount = options.replicaCount;
    this.quorum = Math.floor(options.replicaCount / 2) + 1;
    this.view = options.view;
    this.headChecksum = options.rootChecksum;
    this.clientTable = new ClientTable(
      options.clientSessionCountMax ?? constants.clientSessionCountMax,
    );
  }

  get primaryIndex(): ReplicaIndex {
    return asReplicaIndex(this.view % this.replicaCount);
  }

  get isPrimary(): boolean {
    return this.primaryIndex === this.replica;
  }

  get pipelineLength(): number {
    return this.pipeline.length;
  }

  get queueLength(): number {
    return this.queue.length;
  }

  /** Requests accepted and not yet answered (queued or in the pipeline). */
  get pendingRequestCount(): number {
    return this.pendingClients.size;
  }

  // ----- recovery -----

  /**
   * Replays one durable prepare from the journal at start-up, in op order. With a single replica
   * every durable prepare is committed (its own fdatasync is the whole quorum), so it is applied
   * at once; nobody waits for these replies, but they are cached for retried duplicates.
   */
  onRecoveredPrepare(prepare: Prepare): Effect<Output>[] {
    assert(this.status === 'recovering', 'replay only while recovering');
    assert(prepare.header.op === this.op + 1, 'replay in op order');
    assert(checksumEqual(prepare.header.parent, this.headChecksum), 'replay continues the chain');
    assert(bodyMatches(prepare.header, prepare.body), 'replayed body matches its checksum');
    this.op = prepare.header.op;
    this.headChecksum = prepare.header.checksum;
    this.lastTimestampUs = Math.max(this.lastTimestampUs, prepare.header.timestampUs);
    if (prepare.header.view > this.view) this.view = prepare.header.view;
    if (this.replicaCount === 1) {
      this.commitMax = this.op;
      this.execute(prepare, true);
    } else {
      this.uncommitted.push(prepare);
      this.commitUpTo(prepare.header.commit, true);
    }
    return this.flush();
  }

  /** Ends replay; the replica starts serving in its view. */
  finishRecovery(): Effect<Output>[] {
    assert(this.status === 'recovering', 'finish recovery once');
    this.setStatus('normal');
    this.invariants();
    return this.flush();
  }

  // ----- client requests -----

  onRequest(request: Request): Effect<Output>[] {
    const problem = this.admit(request);
    if (problem === 'drop') return this.flush();
    if (problem !== null) {
      const leaderHint = problem.code === errorCodes.not_leader ? this.primaryIndex : -1;
      this.effects.push({
        kind: 'reject',
        clientId: request.clientId,
        requestNumber: request.requestNumber,
        code: problem.code,
        message: problem.message,
        leaderHint,
      });
      return this.flush();
    }
    this.queue.push(request);
    this.pendingClients.set(request.clientId, request.requestNumber);
    this.preparePending();
    this.invariants();
    return this.flush();
  }

  /**
   * Decides whether a request enters the queue: null to admit, 'drop' for a duplicate already in
   * flight (its reply will come when it commits), a rejection otherwise. A duplicate of the
   * latest committed request is answered from the client table here.
   */
  private admit(request: Request): { code: ErrorCode; message: string } | 'drop' | null {
    if (this.status !== 'normal') {
      return { code: errorCodes.not_ready, message: `replica is ${this.status}` };
    }
    if (!this.isPrimary) {
      return { code: errorCodes.not_leader, message: `replica ${this.primaryIndex} is leader` };
    }
    const pending = this.pendingClients.get(request.clientId);
    if (pending !== undefined) {
      if (pending === request.requestNumber) return 'drop';
      return {
        code: errorCodes.request_gap,
        message: `request ${pending} is still in flight; send one request at a time`,
      };
    }
    const session = this.clientTable.get(request.clientId);
    if (request.operation === 'register') return this.admitRegister(request, session?.reply);
    if (session === undefined) {
      return {
        code: errorCodes.session_not_registered,
        message: 'no session for this client: it was never registered or has been evicted',
      };
    }
    if (request.requestNumber === session.requestNumber) {
      this.effects.push({ kind: 'reply', reply: session.reply });
      return 'drop';
    }
    if (request.requestNumber < session.requestNumber) {
      return { code: errorCodes.request_stale, message: `request ${request.requestNumber} is old` };
    }
    if (request.requestNumber !== session.requestNumber + 1) {
      return {
        code: errorCodes.request_gap,
        message: `expected request ${session.requestNumber + 1}, got ${request.requestNumber}`,
      };
    }
    if (
      this.queue.length >= (this.options.requestQueueCountMax ?? constants.requestQueueCountMax)
    ) {
      return { code: errorCodes.backpressure, message: 'request queue is full; retry later' };
    }
    return null;
  }

  private admitRegister(
    request: Request,
    cached: Reply | undefined,
  ): { code: ErrorCode; message: string } | 'drop' | null {
    if (request.requestNumber !== 0) {
      return { code: errorCodes.invalid_argument, message: 'register must be request number 0' };
    }
    if (cached !== undefined) {
      if (cached.requestNumber !== 0) {
        return { code: errorCodes.request_stale, message: 'session is already registered' };
      }
      this.effects.push({ kind: 'reply', reply: cached });
      return 'drop';
    }
    return null;
  }

  /** Forms prepares from queued requests while the pipeline has room. */
  private preparePending(): void {
    const pipelineMax = this.options.pipelinePrepareCountMax ?? constants.pipelinePrepareCountMax;
    const requestMax = this.options.prepareRequestCountMax ?? constants.prepareRequestCountMax;
    while (this.pipeline.length < pipelineMax && this.queue.length > 0) {
      let sizeBytes = 4;
      let count = 0;
      for (const request of this.queue) {
        const requestBytes = requestOverheadBytes + request.body.length;
        if (count === requestMax) break;
        if (count > 0 && sizeBytes + requestBytes > constants.prepareBodySizeBytesMax) break;
        sizeBytes += requestBytes;
        count += 1;
      }
      assert(count > 0, 'a prepare holds at least one request');
      this.prepare(this.queue.splice(0, count));
    }
  }

  private prepare(requests: Request[]): void {
    assert(this.isPrimary && this.status === 'normal', 'only a normal primary prepares');
    const timestampUs = Math.max(Math.floor(this.options.realtimeUs()), this.lastTimestampUs + 1);
    this.lastTimestampUs = timestampUs;
    const prepare = makePrepare(
      {
        replica: this.replica,
        cluster: this.cluster,
        view: this.view,
        requestCount: requests.length,
        op: asOp(this.op + 1),
        commit: this.commitMax,
        timestampUs: asTimestampUs(timestampUs),
        parent: this.headChecksum,
      },
      encodeBatch(requests),
    );
    this.op = prepare.header.op;
    this.headChecksum = prepare.header.checksum;
    this.pipeline.push({ prepare, oks: new Set() });
    this.effects.push({ kind: 'journal_append', prepare });
    this.event({
      kind: 'prepared',
      op: prepare.header.op,
      requestCount: requests.length,
      bodySizeBytes: prepare.body.length,
    });
    for (let target = 0; target < this.replicaCount; target++) {
      if (target === this.replica) continue;
      this.send(asReplicaIndex(target), { kind: 'prepare', prepare });
    }
  }

  // ----- durability and messages -----

  /** The shell reports that the prepare at `op` (and every earlier one) is written and synced. */
  onJournalDurable(op: Op, checksum: Uint8Array): Effect<Output>[] {
    if (this.status === 'normal' && this.isPrimary) {
      this.acknowledge(op, checksum, this.replica);
    } else if (this.status === 'normal' && op > this.commitMin) {
      this.send(this.primaryIndex, {
        kind: 'prepare_ok',
        replica: this.replica,
        view: this.view,
        op,
        checksum,
      });
    }
    this.invariants();
    return this.flush();
  }

  onMessage(message: ReplicaMessage): Effect<Output>[] {
    if (this.status === 'normal') {
      switch (message.kind) {
        case 'prepare':
          this.onPrepare(message.prepare);
          break;
        case 'prepare_ok':
          if (message.view === this.view && this.isPrimary) {
            this.acknowledge(message.op, message.checksum, message.replica);
          }
          break;
        case 'commit':
          if (message.view === this.view && !this.isPrimary) this.commitUpTo(message.commit, false);
          break;
      }
    }
    this.invariants();
    return this.flush();
  }

  private onPrepare(prepare: Prepare): void {
    const header = prepare.header;
    if (this.isPrimary || header.view !== this.view || header.cluster !== this.cluster) return;
    if (header.op !== this.op + 1) return; // Gaps are repaired by the replication protocol.
    if (!checksumEqual(header.parent, this.headChecksum)) return;
    if (!bodyMatches(header, prepare.body)) return;
    this.op = header.op;
    this.headChecksum = header.checksum;
    this.uncommitted.push(prepare);
    this.effects.push({ kind: 'journal_append', prepare });
    this.commitUpTo(header.commit, false);
  }

  private acknowledge(op: Op, checksum: Uint8Array, from: ReplicaIndex): void {
    const entry = this.pipeline.find((e) => e.prepare.header.op === op);
    if (entry === undefined || !checksumEqual(entry.prepare.header.checksum, checksum)) return;
    entry.oks.add(from);
    while (this.pipeline.length > 0) {
      const head = this.pipeline[0];
      assert(head !== undefined, 'pipeline head');
      if (head.oks.size < this.quorum) break;
      if (!head.oks.has(this.replica)) break; // The primary counts itself only once durable.
      this.pipeline.shift();
      this.commitMax = head.prepare.header.op;
      this.execute(head.prepare, false);
    }
    this.preparePending();
  }

  private commitUpTo(commit: Op, replay: boolean): void {
    if (commit > this.commitMax) this.commitMax = asOp(Math.min(commit, this.op));
    while (this.commitMin < this.commitMax) {
      const prepare = this.uncommitted.shift();
      assert(prepare !== undefined, 'committed prepare is held');
      assert(prepare.header.op === this.commitMin + 1, 'apply in op order');
      this.execute(prepare, replay);
    }
  }

  // ----- execution -----

  /** Applies a committed prepare's requests in order; the primary replies to each client. */
  private execute(prepare: Prepare, replay: boolean): void {
    const op = prepare.header.op;
    assert(op === this.commitMin + 1, 'execute in op order');
    assert(op <= this.commitMax, 'execute only what is committed');
    const requests = decodeBatch(prepare.body);
    requests.forEach((request, requestIndex) => {
      const reply = this.executeRequest(prepare, request, requestIndex);
      if (this.pendingClients.get(request.clientId) === request.requestNumber) {
        this.pendingClients.delete(request.clientId);
      }
      if (reply !== null && !replay && this.isPrimary) this.effects.push({ kind: 'reply', reply });
    });
    this.commitMin = op;
    this.event({
      kind: 'committed',
      op,
      timestampUs: prepare.header.timestampUs,
      requestCount: requests.length,
      bodySizeBytes: prepare.body.length,
      replay,
    });
  }

  private executeRequest(prepare: Prepare, request: Request, requestIndex: number): Reply | null {
    const { op, timestampUs } = prepare.header;
    const { clientId, requestNumber } = request;
    if (request.operation === 'register') {
      if (this.clientTable.get(clientId) !== undefined) return null;
      const reply: Reply = { clientId, requestNumber, op, timestampUs, result: new Uint8Array(0) };
      const evicted = this.clientTable.register(clientId, reply);
      this.event({ kind: 'session_registered', clientId, op });
      this.event({
        kind: 'applied',
        op,
        requestIndex,
        clientId,
        operation: 'register',
        output: null,
      });
      if (evicted !== null) this.evict(evicted);
      return reply;
    }
    const session = this.clientTable.get(clientId);
    // Both cases are prevented by the primary's admission; a replica still decides them the
    // same way everywhere, so that a log written by a faulty primary cannot split replicas.
    if (session === undefined || requestNumber !== session.requestNumber + 1) return null;
    const applied = this.options.stateMachine.apply(request.body, {
      op,
      timestampUs,
      clientId,
      requestIndex,
    });
    const reply: Reply = { clientId, requestNumber, op, timestampUs, result: applied.result };
    this.clientTable.update(reply);
    this.event({
      kind: 'applied',
      op,
      requestIndex,
      clientId,
      operation: 'command',
      output: applied.output,
    });
    return reply;
  }

  private evict(clientId: ClientId): void {
    this.event({ kind: 'session_evicted', clientId });
    if (!this.isPrimary || this.status !== 'normal') return;
    this.effects.push({
      kind: 'reject',
      clientId,
      requestNumber: 0 as RequestNumber,
      code: errorCodes.session_evicted,
      message: 'session evicted: the client table is full and this session was the oldest',
      leaderHint: -1,
    });
  }

  // ----- time -----

  onTick(): Effect<Output>[] {
    this.ticks += 1;
    const heartbeatTicks = this.options.heartbeatTicks ?? 10;
    if (this.status === 'normal' && this.isPrimary && this.ticks % heartbeatTicks === 0) {
      for (let target = 0; target < this.replicaCount; target++) {
        if (target === this.replica) continue;
        this.send(asReplicaIndex(target), {
          kind: 'commit',
          replica: this.replica,
          view: this.view,
          commit: this.commitMax,
        });
      }
    }
    return this.flush();
  }

  // ----- helpers -----

  private setStatus(status: ReplicaStatus): void {
    this.status = status;
    this.event({ kind: 'status_changed', status, view: this.view });
  }

  private send(target: ReplicaIndex, message: ReplicaMessage): void {
    assert(target !== this.replica, 'a replica does not send to itself');
    this.effects.push({ kind: 'send', target, message });
  }

  private event(event: Extract<Effect<Output>, { kind: 'event' }>['event']): void {
    this.effects.push({ kind: 'event', event });
  }

  private flush(): Effect<Output>[] {
    const effects = this.effects;
    this.effects = [];
    return effects;
  }

  /** Checks the replica's invariants; called after every entry point. */
  invariants(): void {
    assert(this.commitMin <= this.commitMax, 'commitMin <= commitMax');
    assert(this.commitMax <= this.op, 'commitMax <= op');
    if (this.isPrimary && this.status === 'normal') {
      assert(this.pipeline.length === this.op - this.commitMax, 'pipeline spans the uncommitted');
      const first = this.pipeline[0];
      if (first !== undefined) assert(first.prepare.header.op === this.commitMax + 1, 'pipeline');
    }
    assert(this.pendingClients.size <= this.queue.length + this.pipelineRequestBound(), 'pending');
  }

  private pipelineRequestBound(): number {
    let count = 0;
    for (const entry of this.pipeline) count += entry.prepare.header.requestCount;
    for (const prepare of this.uncommitted) count += prepare.header.requestCount;
    return count;
  }
}
