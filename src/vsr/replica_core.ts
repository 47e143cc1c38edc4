// The replica's state, shared by the modules that make up the replica (primary.ts, backup.ts,
// execute.ts, view_change.ts, recovery.ts, repair.ts, maintenance.ts), and the small helpers they
// all use to emit effects. The public entry is replica.ts; nothing outside src/vsr touches this.
//
// Invariants are checked by Replica.invariants() after every entry point; the ones about the log
// live in log_suffix.ts.

import { assert } from '../core/assert.js';
import { checksumEqual } from '../core/checksum.js';
import { constants } from '../core/constants.js';
import type { Prepare } from '../core/header.js';
import { asOp, asReplicaIndex } from '../core/types.js';
import type { ClientId, Op, ReplicaIndex, RequestNumber, View } from '../core/types.js';
import type { Request } from './batch.js';
import { ClientTable } from './client_table.js';
import { Clock } from './clock.js';
import { LogSuffix } from './log_suffix.js';
import type {
  Effect,
  JournalReadContext,
  ReplicaEvent,
  ReplicaMessage,
  ReplicaStatus,
  ViewChangeReason,
} from './message.js';
import { RepairBudget } from './repair_budget.js';
import { defaultPrng, resolveOptions } from './replica_options.js';
import type { ReplicaOptions, ReplicaPrng, ResolvedOptions } from './replica_options.js';
import type { Scrubber } from './scrubber.js';
import { Timeout } from './timeout.js';

export type DoViewChange = Extract<ReplicaMessage, { kind: 'do_view_change' }>;
export type StartView = Extract<ReplicaMessage, { kind: 'start_view' }>;

/** A message without its sender and view, which the core fills in. */
export type Outgoing = ReplicaMessage extends infer M
  ? M extends ReplicaMessage
    ? Omit<M, 'replica' | 'view'>
    : never
  : never;

export interface ViewChangeState {
  /** The view whose start_view_change senders are being counted. */
  svcView: View;
  readonly svcFrom: Set<ReplicaIndex>;
  /** A normal backup whose primary went silent proposes this view (and waits for a quorum). */
  proposedView: View | null;
  /** Whether this replica sent its do_view_change for the current view. */
  dvcSent: boolean;
  /** As the new primary: the do_view_change messages received for the current view. */
  readonly dvcs: Map<ReplicaIndex, DoViewChange>;
  /** As the new primary: the chosen log was adopted; repair is completing it. */
  adopted: boolean;
  /** As the new primary: replicas that never saw a header-only op, by op (with its checksum). */
  readonly nacks: Map<number, { checksum: Uint8Array; notSeen: Set<ReplicaIndex> }>;
  /** The view this replica was in before the view change started (for events). */
  oldView: View;
}

export interface RangeRequest {
  readonly peer: ReplicaIndex;
  readonly opFirst: Op;
  readonly opLast: Op;
  readonly id: number;
  /** The last tick it made progress (sent, or a prepare of it arrived). */
  progressTick: number;
  /** The repair budget heard the answer (its first prepare or a nack). */
  answered: boolean;
}

export interface PrepareRequest {
  /** null: asked of every peer (a new primary counting who never saw the op). */
  readonly peer: ReplicaIndex | null;
  readonly id: number;
  readonly sentTick: number;
}

export interface RepairState {
  readonly budget: RepairBudget;
  range: RangeRequest | null;
  /** request_prepare in flight, by op. */
  readonly prepares: Map<number, PrepareRequest>;
  /** Committed ops whose journal record is corrupt: the expected checksum, when known. */
  readonly faulty: Map<number, Uint8Array | null>;
  /** Faulty ops whose checksum is being learnt from the next record. */
  readonly learning: Set<number>;
  /** Peers that could not serve a range starting at `nackedOp` (asked again after progress). */
  readonly nackedBy: Set<ReplicaIndex>;
  nackedOp: Op;
  /** When the first of those nacks came (they are forgotten after a repair timeout). */
  nackedTick: number;
}

/** Counters for tests and metrics; they only grow. */
export interface ReplicaStats {
  rangeRequestCount: number;
  prepareRequestCount: number;
  repairedCount: number;
  viewChangeCount: number;
  truncatedOpCount: number;
  journalReadCount: number;
  /** Client requests the primary recognised as duplicates (vsr_duplicate_requests_total). */
  duplicateRequestCount: number;
}

export class ReplicaCore<Output> {
  readonly options: ReplicaOptions<Output>;
  readonly tuning: ResolvedOptions;
  readonly cluster: number;
  readonly replica: ReplicaIndex;
  readonly replicaCount: number;
  /** Replication and view-change quorum: a majority. */
  readonly quorum: number;
  /** not_seen answers that prove an op was never committed: no replication quorum can hold it. */
  readonly nackQuorum: number;
  readonly prng: ReplicaPrng;
  readonly log: LogSuffix;
  readonly clientTable: ClientTable;
  readonly stats: ReplicaStats = {
    rangeRequestCount: 0,
    prepareRequestCount: 0,
    repairedCount: 0,
    viewChangeCount: 0,
    truncatedOpCount: 0,
    journalReadCount: 0,
    duplicateRequestCount: 0,
  };

  status: ReplicaStatus = 'recovering';
  view: View;
  logView: View;
  /** The highest op known to be committed in the cluster (may exceed what this replica holds). */
  commitMax: Op;
  /** Every op up to here is durable in this replica's journal (as the shell reported). */
  journalDurableOp: Op = asOp(0);
  /** What the superblock holds durably, and the write in flight (at most one). */
  durable: { view: View; logView: View; commit: Op };
  superblockWriting: { view: View; logView: View; commit: Op } | null = null;
  superblockWanted = false;

  // Primary.
  /** prepare_ok senders for each op of the pipeline (ops commitMax+1..op at a normal primary). */
  readonly pipelineOks = new Map<number, Set<ReplicaIndex>>();
  readonly queue: Request[] = [];
  /** Requests accepted and not yet answered, by client (at most one each). */
  readonly pendingClients = new Map<ClientId, RequestNumber>();
  lastTimestampUs = 0;
  /** Whether the primary heard from a quorum within an election timeout. */
  quorumReachable = true;
  /** The tick each replica was last heard from (a ping or pong) in the current view. */
  readonly heardTick: number[];
  /** The tick each replica last sent a message of a later view (primary.ts checkPrimaryQuorum). */
  readonly movedOnTick: number[];
  /** The highest op each replica acknowledged (prepare_ok) in the current view, for metrics. */
  readonly ackedOp: number[];
  /** PrepareOk votes the last op committed in this view had at its commit; null before one. */
  lastCommitVotes: number | null = null;

  // Backup.
  /** The highest op a prepare from this view's primary carried. */
  primaryOpSeen: Op = asOp(0);
  /** This replica asked for start_view of its own view (its log needs replacing). */
  needStartView = false;
  /**
   * A commit number this view's primary claimed beyond any op this backup knows it holds: repair
   * fetches up to it, and it becomes commitMax once those ops are known (backup.ts learnCommit).
   * Equal to commitMax when there is no such claim.
   */
  commitClaim: Op;
  /** When this replica, healthy, last followed a silent peer into a later view (view_follow.ts). */
  viewFollowTick = Number.NEGATIVE_INFINITY;

  // Restart.
  /** The journal replayed whole: every record this replica ever acknowledged is still held. */
  journalIntact = true;
  recoveryNonce = 0;
  replaying = true;

  readonly vc: ViewChangeState;
  readonly repair: RepairState;
  readonly clock: Clock | null;
  scrubber: Scrubber | null = null;
  readsInflight = 0;

  ticks = 0;
  readonly heartbeat: Timeout;
  readonly primaryTimeout: Timeout;
  readonly viewChangeTimeout: Timeout;
  readonly prepareTimeout: Timeout;
  readonly recoveryTimeout: Timeout;

  private effects: Effect<Output>[] = [];

  constructor(options: ReplicaOptions<Output>) {
    assert(options.replicaCount >= 1, 'at least one replica');
    assert(options.replica < options.replicaCount, 'replica index out of range');
    this.options = options;
    this.tuning = resolveOptions(options);
    this.cluster = options.cluster;
    this.replica = options.replica;
    this.replicaCount = options.replicaCount;
    this.quorum = Math.floor(options.replicaCount / 2) + 1;
    this.nackQuorum = options.replicaCount - this.quorum + 1;
    this.prng = options.prng ?? defaultPrng(options.cluster, options.replica);
    this.view = options.view;
    this.logView = options.logView ?? options.view;
    assert(this.logView <= this.view, 'the log view is not after the view');
    this.commitMax = options.commit ?? asOp(0);
    this.commitClaim = this.commitMax;
    this.durable = { view: this.view, logView: this.logView, commit: this.commitMax };
    this.log = new LogSuffix(options.rootChecksum);
    this.clientTable = new ClientTable(this.tuning.clientSessionCountMax);
    this.heardTick = new Array<number>(options.replicaCount).fill(0);
    this.movedOnTick = new Array<number>(options.replicaCount).fill(Number.NEGATIVE_INFINITY);
    this.ackedOp = new Array<number>(options.replicaCount).fill(0);
    this.vc = {
      svcView: this.view,
      svcFrom: new Set(),
      proposedView: null,
      dvcSent: false,
      dvcs: new Map(),
      adopted: false,
      nacks: new Map(),
      oldView: this.view,
    };
    this.repair = {
      budget: new RepairBudget({
        replica: this.replica,
        replicaCount: this.replicaCount,
        random: () => this.random(),
        expiryUs: this.tuning.repairTimeoutTicks * this.tuning.tickUs,
      }),
      range: null,
      prepares: new Map(),
      faulty: new Map(),
      learning: new Set(),
      nackedBy: new Set(),
      nackedOp: asOp(0),
      nackedTick: 0,
    };
    this.clock = this.makeClock();
    const t = this.tuning;
    this.heartbeat = new Timeout('heartbeat', t.heartbeatTicks);
    this.primaryTimeout = new Timeout('primary', t.electionTimeoutTicks);
    this.viewChangeTimeout = new Timeout('view_change', t.viewChangeTimeoutTicks);
    this.prepareTimeout = new Timeout('prepare', t.prepareTimeoutTicks);
    this.recoveryTimeout = new Timeout('recovery', t.recoveryRetryTicks);
  }

  private makeClock(): Clock | null {
    if (!this.tuning.clockSync || this.replicaCount === 1) return null;
    return new Clock({
      replica: this.replica,
      replicaCount: this.replicaCount,
      time: { monotonicUs: () => this.monotonicUs(), realtimeUs: () => this.options.realtimeUs() },
    });
  }

  /** Uniform in [0, 1) from the injected PRNG. */
  random(): number {
    const value = this.prng.float();
    assert(value >= 0 && value < 1, 'prng.float() must return a number in [0, 1)');
    return value;
  }

  /** Monotonic microseconds, counted in ticks (for the repair budget and the clock). */
  monotonicUs(): number {
    return this.ticks * this.tuning.tickUs;
  }

  primaryOf(view: number): ReplicaIndex {
    return asReplicaIndex(view % this.replicaCount);
  }

  get primaryIndex(): ReplicaIndex {
    return this.primaryOf(this.view);
  }

  get isPrimary(): boolean {
    return this.primaryIndex === this.replica;
  }

  get canary(): ResolvedOptions['canary'] {
    return this.tuning.canary;
  }

  /** The highest op in this replica's log. */
  get op(): Op {
    return this.log.headOp;
  }

  /** The highest op applied to the state machine. */
  get commitMin(): Op {
    return this.log.baseOp;
  }

  otherReplicas(): ReplicaIndex[] {
    const others: ReplicaIndex[] = [];
    for (let index = 0; index < this.replicaCount; index++) {
      if (index !== this.replica) others.push(asReplicaIndex(index));
    }
    return others;
  }

  emit(effect: Effect<Output>): void {
    this.effects.push(effect);
  }

  /** Sends as this replica, in its view (or in `view`, for a proposal of a later one). */
  send(target: ReplicaIndex, message: Outgoing, view: View = this.view): void {
    assert(target !== this.replica, 'a replica does not send to itself');
    assert(target < this.replicaCount, 'send target out of range');
    const full = { ...message, replica: this.replica, view } as ReplicaMessage;
    this.effects.push({ kind: 'send', target, message: full });
  }

  /** One message object for every target, so that the shell can encode it once. */
  broadcast(message: Outgoing, view: View = this.view): void {
    const full = { ...message, replica: this.replica, view } as ReplicaMessage;
    for (const target of this.otherReplicas()) {
      this.effects.push({ kind: 'send', target, message: full });
    }
  }

  event(event: ReplicaEvent<Output>): void {
    this.effects.push({ kind: 'event', event });
  }

  /** Only transitions.ts calls this: its transitionTo… functions check the status left. */
  setStatus(status: ReplicaStatus): void {
    if (this.status === status) return;
    this.status = status;
    this.event({ kind: 'status_changed', status, view: this.view });
  }

  journalAppend(prepare: Prepare): void {
    this.effects.push({ kind: 'journal_append', prepare });
  }

  /**
   * Appends, in op order, every pending entry that is next in the journal and holds its prepare.
   * One that does not continue the chain loses its body (a trusted entry keeps its checksum, to be
   * repaired again) or is forgotten (a buffered repair prepare).
   */
  appendReady(): void {
    for (;;) {
      const entry = this.log.nextAppendable();
      if (entry === null) return;
      const prepare = entry.prepare;
      assert(prepare !== null, 'an appendable entry holds its prepare');
      if (!checksumEqual(prepare.header.parent, this.log.journalChecksum)) {
        if (entry.trusted) entry.prepare = null;
        else this.log.dropPending(entry.op);
        this.event({ kind: 'checksum_failure', op: entry.op, source: 'message', from: null });
        return;
      }
      this.log.appendNext(prepare);
      this.lastTimestampUs = Math.max(this.lastTimestampUs, prepare.header.timestampUs);
      this.journalAppend(prepare);
    }
  }

  /** A normal backup adopts its primary's pending commit claim once it knows the op is held. */
  settleCommitClaim(): void {
    if (this.commitClaim <= this.commitMax) return;
    if (this.status !== 'normal' || this.isPrimary) return;
    if (this.commitClaim <= Math.max(this.primaryOpSeen, this.log.verifiedOp)) {
      this.commitMax = this.commitClaim;
    }
  }

  /** The highest op known committed, with a normal backup's pending claim (for the shell). */
  get commitKnown(): Op {
    const claiming = this.status === 'normal' && !this.isPrimary;
    return claiming && this.commitClaim > this.commitMax ? this.commitClaim : this.commitMax;
  }

  /** Room for another journal_read. */
  get canRead(): boolean {
    return this.readsInflight < constants.journalReadInflightMax;
  }

  journalRead(op: Op, checksum: Uint8Array | null, context: JournalReadContext): void {
    assert(this.canRead, 'journal reads over their bound');
    this.readsInflight += 1;
    this.stats.journalReadCount += 1;
    this.effects.push({ kind: 'journal_read', op, checksum, context });
  }

  /** The journal was cut back to `opMax` (records after it are gone, durable or not). */
  journalTruncated(opMax: Op): void {
    if (this.journalDurableOp > opMax) this.journalDurableOp = opMax;
  }

  /** Asks for the superblock to hold the current view, log view and commit (coalesced). */
  persist(): void {
    this.superblockWanted = true;
    if (this.superblockWriting === null) this.writeSuperblock();
  }

  /**
   * The log view the superblock may hold: this replica's log view only once its journal is
   * verified to be a prefix of that view's log. After adopting a view whose log it has not yet
   * matched op by op, the journal may still hold ops of an older log: after a restart, claiming
   * the newer log view for them would be a lie (and could elect a log missing committed ops).
   * The journal must also hold the adopted log's committed anchor durably: a prefix that stops
   * short of it would, after a restart, claim the newer log view without ops committed before
   * that view started, and win a view change over a replica of an older log view that holds
   * them (VOPR seed 103014 of the forged set lost a committed op that way).
   */
  get persistableLogView(): View {
    const log = this.log;
    const anchored = this.journalDurableOp >= log.anchorOp;
    if (log.verifiedOp === log.journalOp && anchored) return this.logView;
    return this.superblockWriting?.logView ?? this.durable.logView;
  }

  /** Persists the log view once the journal is verified, if the superblock lags behind it. */
  persistLogViewWhenVerified(): void {
    const written = this.superblockWriting ?? this.durable;
    if (written.logView < this.logView && this.persistableLogView === this.logView) {
      this.persist();
    }
  }

  writeSuperblock(): void {
    assert(this.superblockWriting === null, 'one superblock write at a time');
    // Only a commit this journal durably holds: the superblock never points past the journal.
    const held = Math.min(this.commitMin, this.journalDurableOp);
    const commit = asOp(Math.max(this.durable.commit, held));
    const state = { view: this.view, logView: this.persistableLogView, commit };
    this.superblockWriting = state;
    this.superblockWanted = false;
    this.effects.push({ kind: 'superblock_write', ...state });
  }

  viewChangeStartedEvent(oldView: View, reason: ViewChangeReason): void {
    this.event({ kind: 'view_change_started', oldView, view: this.view, reason });
  }

  flush(): Effect<Output>[] {
    const effects = this.effects;
    this.effects = [];
    return effects;
  }
}
