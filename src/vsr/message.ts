// What goes into and out of the replica: messages between replicas, client replies and
// rejections, the events it reports, and the effects it returns for the shell to perform
// (HOUSE_RULES §3). This file is the contract between the pure replica and every shell that runs
// it (src/node in production, the simulator in src/testing): the replica never performs I/O.
//
// The shell's duties, effect by effect (each effect is performed in the order returned):
//   journal_append    write the prepare at its op and fdatasync it, then call
//                     onJournalDurable(op, checksum). Normally op = journal head + 1. An op at or
//                     below the head replaces a record the replica found corrupt (a repair): same
//                     op, and the checksum the hash chain expects. Appends may complete together
//                     (group commit) but are reported in the order they were made.
//   journal_truncate  discard every record with op > opMax (only ever uncommitted ops; the replica
//                     never truncates at or below its commit number) and make that durable. It
//                     completes before any later journal_append or superblock_write starts.
//   journal_read      read the record at op and call onJournalRead(op, prepare, context) with the
//                     prepare, or null when it is missing, fails its checksums, or (when checksum
//                     is not null) has another checksum. Reads may complete in any order.
//   superblock_write  store {view, logView, commit} durably, then call onSuperblockDurable().
//                     At most one is outstanding: the replica waits for the call before the next.
//                     Pass them back at restart (ReplicaOptions view, logView, commit). Each field
//                     never decreases from one write to the next.
//   send              deliver the message to replica `target` (best effort: it may be lost).
//   reply / reject    answer the client (by client id) on whatever connection it uses now.
//   executed          data: a committed op was executed (in op order, every op, also one whose
//                     requests were all skipped), with its commit timestamp and the requests
//                     that applied (batch order); feed the derived views from it. Emitted on
//                     every replica, also while replaying the journal at start-up, before the
//                     op's replies.
//   reads_ready       data: this replica became primary of `view`; it may answer linearizable
//                     reads once it has executed through `op` (every op its view started with).
//                     It hears a quorum at that moment.
//   quorum_changed    data: the primary of `view` has lost (or regained) contact with a quorum;
//                     without one it must not answer linearizable reads.
//   event             telemetry only (metrics, logs, traces): a shell may drop every event and
//                     nothing about the replica's state, its replies or the read index changes.
// After a restart the shell replays the journal through onRecoveredPrepare (op order, from op 1)
// and then calls finishRecovery.

import type { ErrorCode } from '../core/errors.js';
import type { Prepare } from '../core/header.js';
import type {
  ClientId,
  Op,
  ReplicaIndex,
  RequestNumber,
  TimestampUs,
  View,
} from '../core/types.js';
import type { Operation, Request } from './batch.js';

/**
 * One op of a log suffix carried by a view change: the prepare when the sender holds it (and it
 * fits the message's byte budget), else only the checksum, which the receiver repairs by asking
 * a peer for "the prepare at op with this checksum".
 */
export interface SuffixEntry {
  readonly op: Op;
  readonly checksum: Uint8Array;
  readonly prepare: Prepare | null;
}

/** Why a replica answers a request_prepare without the prepare (protocol-aware recovery). */
export type NackReason =
  /**
   * This replica never accepted a prepare with that checksum at that op (or truncated it as
   * uncommitted).
   */
  | 'not_seen'
  /** This replica's record at that op is corrupt or unreadable: it may be the one asked for. */
  | 'seen_but_corrupt';

/**
 * Messages between replicas. Every message names its sender (`replica`) and the sender's view.
 * A message may be lost, delayed, duplicated or reordered; the replica copes with all of it.
 */
export type ReplicaMessage =
  /** Primary → backups: the next prepare of the view (also re-sent until acknowledged). */
  | {
      readonly kind: 'prepare';
      readonly replica: ReplicaIndex;
      readonly view: View;
      readonly prepare: Prepare;
    }
  /** Backup → primary: the prepare with this checksum is durable in the backup's journal. */
  | {
      readonly kind: 'prepare_ok';
      readonly replica: ReplicaIndex;
      readonly view: View;
      readonly op: Op;
      readonly checksum: Uint8Array;
    }
  /** Primary → backups, every heartbeat: the commit number (and proof the primary is alive). */
  | {
      readonly kind: 'commit';
      readonly replica: ReplicaIndex;
      readonly view: View;
      readonly commit: Op;
    }
  /** Any → any, every heartbeat: a liveness probe carrying the sender's monotonic time. */
  | {
      readonly kind: 'ping';
      readonly replica: ReplicaIndex;
      readonly view: View;
      readonly pingMonotonicUs: number;
    }
  /** The answer to a ping: the ping's time echoed, and the answering replica's wall clock. */
  | {
      readonly kind: 'pong';
      readonly replica: ReplicaIndex;
      readonly view: View;
      readonly pingMonotonicUs: number;
      readonly pongRealtimeUs: number;
    }
  /** Any → all: the sender wants view `view` to start (it has not heard from its primary). */
  | { readonly kind: 'start_view_change'; readonly replica: ReplicaIndex; readonly view: View }
  /**
   * Any → the primary of `view`, after a quorum of start_view_change: the sender's log. The log
   * is the committed prefix up to anchorOp (whose checksum is anchorChecksum) followed by
   * `suffix` (ops anchorOp+1..op, contiguous, hash-chained). logView is the last view in which
   * the sender's status was normal; commitMax the highest op it knows is committed.
   */
  | {
      readonly kind: 'do_view_change';
      readonly replica: ReplicaIndex;
      readonly view: View;
      readonly logView: View;
      readonly op: Op;
      readonly commitMax: Op;
      readonly anchorOp: Op;
      readonly anchorChecksum: Uint8Array;
      readonly suffix: readonly SuffixEntry[];
    }
  /**
   * New primary → backups (and the answer to request_start_view): the view's log, as in
   * do_view_change. nonce echoes the request's (0 when broadcast on starting the view).
   */
  | {
      readonly kind: 'start_view';
      readonly replica: ReplicaIndex;
      readonly view: View;
      readonly op: Op;
      readonly commitMax: Op;
      readonly anchorOp: Op;
      readonly anchorChecksum: Uint8Array;
      readonly suffix: readonly SuffixEntry[];
      readonly nonce: number;
    }
  /** A restarted replica (or one that fell behind a view) asks the primary for start_view. */
  | {
      readonly kind: 'request_start_view';
      readonly replica: ReplicaIndex;
      readonly view: View;
      readonly nonce: number;
    }
  /**
   * Repair of one op: "the prepare at op with this checksum" (checksum null: the committed
   * prepare at op). Answered by repair_prepare or nack_prepare.
   */
  | {
      readonly kind: 'request_prepare';
      readonly replica: ReplicaIndex;
      readonly view: View;
      readonly op: Op;
      readonly checksum: Uint8Array | null;
    }
  /**
   * Bulk repair: the ops opFirst..opLast (at most constants.repairRangeCountMax). The answer is
   * one repair_prepare per op the sender can vouch for, in op order, or a nack for opFirst.
   */
  | {
      readonly kind: 'request_prepares';
      readonly replica: ReplicaIndex;
      readonly view: View;
      readonly opFirst: Op;
      readonly opLast: Op;
    }
  /**
   * A prepare sent for repair. `committed`: the sender has executed this op, so it is the
   * cluster's committed prepare at its op. Otherwise it is from the log of the sender's view,
   * valid for a receiver in the same view.
   */
  | {
      readonly kind: 'repair_prepare';
      readonly replica: ReplicaIndex;
      readonly view: View;
      readonly prepare: Prepare;
      readonly committed: boolean;
    }
  /** The answer to request_prepare(s) when the sender cannot provide the prepare. */
  | {
      readonly kind: 'nack_prepare';
      readonly replica: ReplicaIndex;
      readonly view: View;
      readonly op: Op;
      readonly checksum: Uint8Array | null;
      readonly reason: NackReason;
    };

export type ReplicaMessageKind = ReplicaMessage['kind'];

/** A committed request's answer; cached in the client table for duplicates. */
export interface Reply {
  readonly clientId: ClientId;
  readonly requestNumber: RequestNumber;
  readonly op: Op;
  readonly timestampUs: TimestampUs;
  /** The state machine's encoded result; empty for `register`. */
  readonly result: Uint8Array;
}

/**
 * recovering: restarted, waiting to learn the current view (start_view) before serving.
 * normal: serving in `view` (as its primary or as a backup).
 * view_change: electing the primary of `view`.
 */
export type ReplicaStatus = 'recovering' | 'normal' | 'view_change';

export type ViewChangeReason =
  /** This backup heard nothing from its primary for an election timeout (and a quorum agreed). */
  | 'primary_timeout'
  /** The previous view change did not complete in time. */
  | 'view_change_timeout'
  /** Another replica started a view change for a later view. */
  | 'start_view_change'
  /** A do_view_change for a later view arrived. */
  | 'do_view_change'
  /** A message from the normal primary of a later view arrived (this replica missed a view). */
  | 'later_view';

/** Where a checksum failure was found. */
export type ChecksumFailureSource =
  /** A journal read returned nothing usable for an op this replica holds as committed. */
  | 'journal'
  /** A message carried a prepare whose header or body does not match its checksums. */
  | 'message';

export type TruncateReason =
  /** The new view's log does not hold these ops (they were never committed). */
  | 'view_change'
  /** Repair found this replica's ops differ from the committed ones (they were never committed). */
  | 'divergence'
  /** A quorum of replicas never saw this op: it cannot have been committed. */
  | 'nack_quorum';

/**
 * Why a peer's message was refused (issue 14: a replica survives whatever a peer sends):
 *   invalid_sender       the sender index is not another replica of this cluster;
 *   view_out_of_range    a view beyond what this replica may hold (message_bounds.ts);
 *   op_out_of_range      an op or commit number beyond what it may hold;
 *   field_invalid        another field that could not be encoded again (a nonce, a time, a
 *                        checksum's length, a suffix too long);
 *   view_change_refused  a peer asked for a later view while this replica's view is healthy
 *                        (view_follow.ts);
 *   commit_unreachable   a commit number claimed for this view that its primary does not hold
 *                        (the claim is dropped).
 */
export type MessageRejectReason =
  | 'invalid_sender'
  | 'view_out_of_range'
  | 'op_out_of_range'
  | 'field_invalid'
  | 'view_change_refused'
  | 'commit_unreachable';

/** One committed request as executed: in the `executed` data effect and the `applied` event. */
export interface AppliedRequest<Output> {
  readonly op: Op;
  readonly requestIndex: number;
  readonly clientId: ClientId;
  readonly requestNumber: RequestNumber;
  readonly operation: Operation;
  /** The state machine's output; null for a register. */
  readonly output: Output | null;
}

/** One committed op as executed: what the derived views are fed (the `executed` effect). */
export interface ExecutedOp<Output> {
  readonly op: Op;
  /** The prepare's timestamp: the commit time every replica agrees on. */
  readonly timestampUs: TimestampUs;
  /** The requests of the op's batch that applied (skipped ones are absent), in batch order. */
  readonly applied: readonly AppliedRequest<Output>[];
}

export type ReplicaEvent<Output> =
  | { readonly kind: 'status_changed'; readonly status: ReplicaStatus; readonly view: View }
  | {
      readonly kind: 'prepared';
      readonly op: Op;
      readonly requestCount: number;
      readonly bodySizeBytes: number;
      /** The batch's requests, as the primary queued them (the shell must not change them). */
      readonly requests: readonly Request[];
    }
  | {
      readonly kind: 'committed';
      readonly op: Op;
      readonly timestampUs: TimestampUs;
      readonly requestCount: number;
      readonly bodySizeBytes: number;
      /** True while replaying the journal at start-up: nobody is waiting for a reply. */
      readonly replay: boolean;
    }
  | ({ readonly kind: 'applied' } & AppliedRequest<Output>)
  | { readonly kind: 'session_registered'; readonly clientId: ClientId; readonly op: Op }
  | { readonly kind: 'session_evicted'; readonly clientId: ClientId }
  | {
      readonly kind: 'view_change_started';
      readonly oldView: View;
      readonly view: View;
      readonly reason: ViewChangeReason;
    }
  | {
      readonly kind: 'view_change_finished';
      readonly oldView: View;
      readonly view: View;
      readonly primary: ReplicaIndex;
      readonly op: Op;
      readonly commit: Op;
    }
  | { readonly kind: 'became_primary'; readonly view: View; readonly op: Op; readonly commit: Op }
  /** The primary has (or has lost) contact with a quorum; without it, it refuses requests. */
  | { readonly kind: 'primary_quorum'; readonly view: View; readonly reachable: boolean }
  | {
      readonly kind: 'repair_requested';
      /** 'range': request_prepares opFirst..opLast; 'prepare': request_prepare of one op. */
      readonly request: 'range' | 'prepare';
      readonly opFirst: Op;
      readonly opLast: Op;
      readonly target: ReplicaIndex;
    }
  | {
      readonly kind: 'repair_completed';
      readonly op: Op;
      readonly from: ReplicaIndex;
      /**
       * 'append': filled the log; 'verify': confirmed an op already held; 'rewrite': replaced a
       * corrupt record.
       */
      readonly how: 'append' | 'verify' | 'rewrite';
    }
  | {
      readonly kind: 'checksum_failure';
      readonly op: Op;
      readonly source: ChecksumFailureSource;
      readonly from: ReplicaIndex | null;
    }
  /**
   * A view's log (from `from`) contradicts an op this replica already executed: it refuses that
   * log. Only a safety violation elsewhere (or a canary) can cause it.
   */
  | { readonly kind: 'log_divergence'; readonly op: Op; readonly from: ReplicaIndex }
  /** A peer message refused, or the part of it this replica will not act on (see the reason). */
  | {
      readonly kind: 'message_rejected';
      readonly reason: MessageRejectReason;
      readonly messageKind: ReplicaMessageKind;
      /** The sender the message names (it may be forged), or null when not known. */
      readonly from: number | null;
    }
  | {
      readonly kind: 'log_truncated';
      readonly opMax: Op;
      readonly opMaxBefore: Op;
      readonly reason: TruncateReason;
    }
  | {
      readonly kind: 'clock_offset';
      /** True when the cluster's clocks agree (the primary may timestamp prepares). */
      readonly synchronized: boolean;
      /** Cluster time minus this replica's wall clock (midpoint), when synchronised. */
      readonly offsetUs: number | null;
      readonly reason: 'synchronized' | 'window_expired' | 'epoch_expired';
    }
  | {
      readonly kind: 'scrub_progress';
      readonly tourCount: number;
      readonly scrubbedCount: number;
      readonly corruptionCount: number;
      /** The op whose read failed, when this event reports a corruption; else null. */
      readonly corruptOp: Op | null;
    };

/**
 * What a journal_read is for; the shell hands it back unchanged to onJournalRead. Opaque to the
 * shell.
 */
export type JournalReadContext =
  /** Serving a peer's request_prepare (single) or request_prepares (range). */
  | {
      readonly kind: 'serve';
      readonly replica: ReplicaIndex;
      readonly checksum: Uint8Array | null;
      readonly range: boolean;
    }
  /** The scrubber's tour over committed ops. */
  | { readonly kind: 'scrub' }
  /** Reading op+1 to learn (from its parent) the checksum of a corrupt committed op. */
  | { readonly kind: 'checksum_of'; readonly op: Op };

export type Effect<Output> =
  | { readonly kind: 'journal_append'; readonly prepare: Prepare }
  | { readonly kind: 'journal_truncate'; readonly opMax: Op }
  | {
      readonly kind: 'journal_read';
      readonly op: Op;
      readonly checksum: Uint8Array | null;
      readonly context: JournalReadContext;
    }
  | {
      readonly kind: 'superblock_write';
      readonly view: View;
      readonly logView: View;
      readonly commit: Op;
    }
  | { readonly kind: 'send'; readonly target: ReplicaIndex; readonly message: ReplicaMessage }
  | { readonly kind: 'reply'; readonly reply: Reply }
  | {
      readonly kind: 'reject';
      readonly clientId: ClientId;
      readonly requestNumber: RequestNumber;
      readonly code: ErrorCode;
      readonly message: string;
      /** The leader's index for KMB_ERR_NOT_LEADER, else -1. */
      readonly leaderHint: number;
    }
  | ({ readonly kind: 'executed' } & ExecutedOp<Output>)
  | { readonly kind: 'reads_ready'; readonly view: View; readonly op: Op }
  | { readonly kind: 'quorum_changed'; readonly view: View; readonly reachable: boolean }
  | { readonly kind: 'event'; readonly event: ReplicaEvent<Output> };
