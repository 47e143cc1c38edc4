// The replica's options: what the shell passes in (identity, durable state, the state machine,
// injected time and randomness, tuning) and the defaults for everything optional. Timeouts are in
// ticks (10 ms in production); resolveOptions() checks every bound once, at construction.

import { assert } from '../core/assert.js';
import { constants } from '../core/constants.js';
import type { ClientId, Op, ReplicaIndex, TimestampUs, View } from '../core/types.js';

/** What the replica needs of the state machine it replicates (the kernel, in production). */
export interface StateMachine<Output> {
  /** Applies one committed command. Must be deterministic, and must not throw on bad input. */
  apply(
    body: Uint8Array,
    meta: { op: Op; timestampUs: TimestampUs; clientId: ClientId; requestIndex: number },
  ): { result: Uint8Array; output: Output };
}

/** Injected randomness (the simulator's seeded Prng satisfies it). */
export interface ReplicaPrng {
  /** Uniform in [0, 1). */
  float(): number;
}

/**
 * Deliberate bugs for the simulator's canary runs (DESIGN §8): each switches on exactly one,
 * so that the checkers can be shown to catch it. Production never sets one.
 *   ack_before_fsync        the primary counts its own prepare_ok when it emits journal_append,
 *                           and a backup sends prepare_ok when it appends, not when durable;
 *   commit_without_quorum   the primary commits on its own acknowledgement alone;
 *   adopt_wrong_log         a new primary adopts the do_view_change log with the SMALLEST
 *                           (log view, op) instead of the largest;
 *   skip_repair_checksum    a repaired prepare is accepted without checking its checksum or parent;
 *   no_duplicate_detection  a retried request is prepared (and applied) again;
 *   trust_peer_numbers      a peer message's views and ops are not range-checked
 *                           (message_bounds.ts): a forged view past the wire's u32 is adopted.
 */
export type Canary =
  | 'ack_before_fsync'
  | 'commit_without_quorum'
  | 'adopt_wrong_log'
  | 'skip_repair_checksum'
  | 'no_duplicate_detection'
  | 'trust_peer_numbers';

export interface ReplicaOptions<Output> {
  readonly cluster: number;
  readonly replica: ReplicaIndex;
  readonly replicaCount: number;
  readonly stateMachine: StateMachine<Output>;
  /** Wall-clock microseconds; the primary timestamps prepares with it (kept monotonic). */
  readonly realtimeUs: () => number;
  /** Durable state from the superblock: the view, the last normal view, the commit number. */
  readonly view: View;
  /** Default: `view` (the replica was normal in its durable view). */
  readonly logView?: View;
  /** Default 0. */
  readonly commit?: Op;
  readonly rootChecksum: Uint8Array;
  /** Seeded randomness for election timeouts, nonces and repair peer choice. */
  readonly prng?: ReplicaPrng;
  readonly canary?: Canary;
  readonly pipelinePrepareCountMax?: number;
  readonly prepareRequestCountMax?: number;
  /**
   * With constants.prepareBatchWaitInFlightMin prepares in flight, fewer queued requests than
   * this wait for a commit instead of going out as a small prepare. 1 turns the wait off.
   * Default constants.prepareBatchRequestCountMin.
   */
  readonly prepareBatchRequestCountMin?: number;
  readonly clientSessionCountMax?: number;
  readonly requestQueueCountMax?: number;
  /** How often the primary sends commit heartbeats and every replica pings. Default 10. */
  readonly heartbeatTicks?: number;
  /** A backup that hears nothing from its primary this long (plus up to as much again,
   * randomised) proposes a view change. Default 100. */
  readonly electionTimeoutTicks?: number;
  /** A view change not finished within this (randomised likewise) moves on. Default 200. */
  readonly viewChangeTimeoutTicks?: number;
  /** The primary re-sends unacknowledged prepares this often. Default 20. */
  readonly prepareTimeoutTicks?: number;
  /** A recovering replica re-asks for start_view this often. Default 20. */
  readonly recoveryRetryTicks?: number;
  /** A repair request unanswered this long is sent again (to another peer). Default 20. */
  readonly repairTimeoutTicks?: number;
  /** One tick's length, for the repair budget's and the clock's microseconds. Default 10 ms. */
  readonly tickUs?: number;
  /** Journal reads handed out per tick by the log scrubber; 0 turns scrubbing off. Default 0. */
  readonly scrubReadsPerTickMax?: number;
  /**
   * Cluster clock synchronisation (clock.ts): when true, a primary of several replicas timestamps
   * prepares with the time a quorum of clocks agrees on, and prepares nothing while they do not
   * agree. Default false: the local wall clock, kept monotonic.
   */
  readonly clockSync?: boolean;
}

export interface ResolvedOptions {
  readonly pipelinePrepareCountMax: number;
  readonly prepareRequestCountMax: number;
  readonly prepareBatchRequestCountMin: number;
  readonly clientSessionCountMax: number;
  readonly requestQueueCountMax: number;
  readonly heartbeatTicks: number;
  readonly electionTimeoutTicks: number;
  readonly viewChangeTimeoutTicks: number;
  readonly prepareTimeoutTicks: number;
  readonly recoveryRetryTicks: number;
  readonly repairTimeoutTicks: number;
  readonly tickUs: number;
  readonly scrubReadsPerTickMax: number;
  readonly clockSync: boolean;
  readonly canary: Canary | null;
}

function positiveInteger(value: number, name: string): number {
  assert(Number.isSafeInteger(value) && value > 0, `${name} must be a positive integer`);
  return value;
}

export function resolveOptions<Output>(options: ReplicaOptions<Output>): ResolvedOptions {
  const heartbeatTicks = positiveInteger(options.heartbeatTicks ?? 10, 'heartbeatTicks');
  const resolved: ResolvedOptions = {
    pipelinePrepareCountMax: positiveInteger(
      options.pipelinePrepareCountMax ?? constants.pipelinePrepareCountMax,
      'pipelinePrepareCountMax',
    ),
    prepareRequestCountMax: positiveInteger(
      options.prepareRequestCountMax ?? constants.prepareRequestCountMax,
      'prepareRequestCountMax',
    ),
    prepareBatchRequestCountMin: positiveInteger(
      options.prepareBatchRequestCountMin ?? constants.prepareBatchRequestCountMin,
      'prepareBatchRequestCountMin',
    ),
    clientSessionCountMax: positiveInteger(
      options.clientSessionCountMax ?? constants.clientSessionCountMax,
      'clientSessionCountMax',
    ),
    requestQueueCountMax: positiveInteger(
      options.requestQueueCountMax ?? constants.requestQueueCountMax,
      'requestQueueCountMax',
    ),
    heartbeatTicks,
    electionTimeoutTicks: positiveInteger(options.electionTimeoutTicks ?? 100, 'electionTicks'),
    viewChangeTimeoutTicks: positiveInteger(options.viewChangeTimeoutTicks ?? 200, 'vcTicks'),
    prepareTimeoutTicks: positiveInteger(options.prepareTimeoutTicks ?? 20, 'prepareTicks'),
    recoveryRetryTicks: positiveInteger(options.recoveryRetryTicks ?? 20, 'recoveryTicks'),
    repairTimeoutTicks: positiveInteger(options.repairTimeoutTicks ?? 20, 'repairTicks'),
    tickUs: positiveInteger(options.tickUs ?? 10_000, 'tickUs'),
    scrubReadsPerTickMax: options.scrubReadsPerTickMax ?? 0,
    clockSync: options.clockSync ?? false,
    canary: options.canary ?? null,
  };
  assert(resolved.pipelinePrepareCountMax <= constants.pipelinePrepareCountMax, 'pipeline bound');
  assert(resolved.prepareRequestCountMax <= constants.prepareRequestCountMax, 'batch bound');
  assert(resolved.requestQueueCountMax <= constants.requestQueueCountMax, 'queue bound');
  assert(resolved.electionTimeoutTicks > heartbeatTicks, 'election timeout exceeds a heartbeat');
  assert(Number.isSafeInteger(resolved.scrubReadsPerTickMax), 'scrubReadsPerTickMax');
  assert(resolved.scrubReadsPerTickMax >= 0, 'scrubReadsPerTickMax must not be negative');
  return resolved;
}

/**
 * The default randomness when the shell passes none: a fixed-seed splitmix32 stream derived
 * from the cluster and the replica, so replicas still draw different election timeouts.
 * Deterministic by design; production passes a generator seeded from the OS.
 */
export function defaultPrng(cluster: number, replica: ReplicaIndex): ReplicaPrng {
  let state = (cluster ^ Math.imul(replica + 1, 0x9e3779b9)) | 0;
  return {
    float(): number {
      state = (state + 0x9e3779b9) | 0;
      let z = state;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return ((z ^ (z >>> 16)) >>> 0) / 0x1_0000_0000;
    },
  };
}
