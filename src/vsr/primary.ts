// The primary's side of normal operation (Viewstamped Replication Revisited §4.1): admitting
// client requests (session checks, duplicates, backpressure), batching queued requests into
// prepares while the pipeline has room, counting prepare_ok (itself only once its own append is
// durable), committing in op order on a quorum, commit heartbeats, re-sending prepares that were
// not acknowledged, and watching that a quorum of replicas is still reachable.
//
// Invariants: at a normal primary the pipeline is exactly the ops commitMax+1..op, every op of
// it is in this replica's journal, and commitMin = commitMax (it executes as it commits). A
// primary that cannot reach a quorum keeps its status but refuses new requests (NOT_READY):
// nothing it prepares can commit until it hears from a quorum again or learns of a later view.

import { assert } from '../core/assert.js';
import { checksumEqual } from '../core/checksum.js';
import { constants } from '../core/constants.js';
import { errorCodes } from '../core/errors.js';
import type { ErrorCode } from '../core/errors.js';
import { makePrepare } from '../core/header.js';
import { asOp, asTimestampUs } from '../core/types.js';
import type { Op, ReplicaIndex } from '../core/types.js';
import { decodeBatch, encodeBatch, requestOverheadBytes } from './batch.js';
import type { Request } from './batch.js';
import { executeCommitted } from './execute.js';
import type { Reply } from './message.js';
import type { ReplicaCore } from './replica_core.js';

type Problem = { code: ErrorCode; message: string } | 'drop' | null;

export function onRequest<Output>(r: ReplicaCore<Output>, request: Request): void {
  const problem = admit(r, request);
  if (problem === 'drop') return;
  if (problem !== null) {
    reject(r, request, problem);
    return;
  }
  r.queue.push(request);
  r.pendingClients.set(request.clientId, request.requestNumber);
  preparePending(r);
}

export function reject<Output>(
  r: ReplicaCore<Output>,
  request: Pick<Request, 'clientId' | 'requestNumber'>,
  problem: { code: ErrorCode; message: string },
): void {
  const leaderHint = problem.code === errorCodes.not_leader ? r.primaryIndex : -1;
  r.emit({
    kind: 'reject',
    clientId: request.clientId,
    requestNumber: request.requestNumber,
    code: problem.code,
    message: problem.message,
    leaderHint,
  });
}

/**
 * Decides whether a request enters the queue: null to admit, 'drop' for a duplicate already in
 * flight (its reply comes when it commits), a rejection otherwise. A duplicate of the latest
 * committed request is answered from the client table here.
 */
function admit<Output>(r: ReplicaCore<Output>, request: Request): Problem {
  if (r.status !== 'normal') {
    return { code: errorCodes.not_ready, message: `replica is ${r.status}; retry shortly` };
  }
  if (!r.isPrimary) {
    return { code: errorCodes.not_leader, message: `replica ${r.primaryIndex} is leader` };
  }
  if (!r.quorumReachable) {
    return { code: errorCodes.not_ready, message: 'the leader cannot reach a quorum of replicas' };
  }
  if (r.queue.length >= r.tuning.requestQueueCountMax) {
    return { code: errorCodes.backpressure, message: 'request queue is full; retry later' };
  }
  const duplicatesPass = r.canary === 'no_duplicate_detection';
  const pending = r.pendingClients.get(request.clientId);
  if (pending !== undefined && !duplicatesPass) {
    if (pending === request.requestNumber) {
      r.stats.duplicateRequestCount += 1;
      return 'drop';
    }
    if (request.requestNumber === pending + 1) {
      // The client only sends the next request after a reply: the one pending here committed
      // elsewhere (another view) and is still on its way through this log. Retry shortly.
      return {
        code: errorCodes.not_ready,
        message: `request ${pending} is still being committed here; retry shortly`,
      };
    }
    return {
      code: errorCodes.request_gap,
      message: `request ${pending} is still in flight; send one request at a time`,
    };
  }
  const session = r.clientTable.get(request.clientId);
  if (request.operation === 'register') return admitRegister(r, request, session?.reply);
  if (session === undefined) {
    return {
      code: errorCodes.session_not_registered,
      message: 'no session for this client: it was never registered or has been evicted',
    };
  }
  if (request.requestNumber === session.requestNumber && !duplicatesPass) {
    r.stats.duplicateRequestCount += 1;
    r.emit({ kind: 'reply', reply: session.reply });
    return 'drop';
  }
  if (request.requestNumber < session.requestNumber) {
    return { code: errorCodes.request_stale, message: `request ${request.requestNumber} is old` };
  }
  if (request.requestNumber > session.requestNumber + 1) {
    return {
      code: errorCodes.request_gap,
      message: `expected request ${session.requestNumber + 1}, got ${request.requestNumber}`,
    };
  }
  return null;
}

function admitRegister<Output>(
  r: ReplicaCore<Output>,
  request: Request,
  cached: Reply | undefined,
): Problem {
  if (request.requestNumber !== 0) {
    return { code: errorCodes.invalid_argument, message: 'register must be request number 0' };
  }
  if (cached !== undefined) {
    if (cached.requestNumber !== 0) {
      return { code: errorCodes.request_stale, message: 'session is already registered' };
    }
    r.stats.duplicateRequestCount += 1;
    r.emit({ kind: 'reply', reply: cached });
    return 'drop';
  }
  return null;
}

/** Forms prepares from queued requests while the pipeline has room. */
export function preparePending<Output>(r: ReplicaCore<Output>): void {
  if (r.status !== 'normal' || !r.isPrimary) return;
  const batchMin = Math.min(r.tuning.prepareBatchRequestCountMin, r.tuning.prepareRequestCountMax);
  while (r.op - r.commitMax < r.tuning.pipelinePrepareCountMax && r.queue.length > 0) {
    const inFlight = r.op - r.commitMax;
    // Small batches wait for a commit once a few prepares are in flight (constants.ts).
    if (inFlight >= constants.prepareBatchWaitInFlightMin && r.queue.length < batchMin) {
      if (queuedBodyBytes(r.queue) < constants.prepareBatchSizeBytesMin) return;
    }
    const timestampUs = nextTimestamp(r);
    if (timestampUs === null) return; // The cluster's clocks do not agree: wait.
    let sizeBytes = 4;
    let count = 0;
    for (const request of r.queue) {
      const requestBytes = requestOverheadBytes + request.body.length;
      if (count === r.tuning.prepareRequestCountMax) break;
      if (count > 0 && sizeBytes + requestBytes > constants.prepareBodySizeBytesMax) break;
      sizeBytes += requestBytes;
      count += 1;
    }
    assert(count > 0, 'a prepare holds at least one request');
    prepare(r, r.queue.splice(0, count), timestampUs);
  }
}

/** Body bytes of the queued requests (called only while fewer than a batch's count wait). */
function queuedBodyBytes(queue: readonly Request[]): number {
  let sizeBytes = 0;
  for (const request of queue) sizeBytes += request.body.length;
  return sizeBytes;
}

/** The next prepare timestamp: cluster time (or the wall clock), kept strictly monotonic. */
function nextTimestamp<Output>(r: ReplicaCore<Output>): number | null {
  const nowUs = r.clock === null ? r.options.realtimeUs() : r.clock.realtime();
  if (nowUs === null) return null;
  return Math.max(Math.floor(nowUs), r.lastTimestampUs + 1);
}

function prepare<Output>(r: ReplicaCore<Output>, requests: Request[], timestampUs: number): void {
  assert(r.log.verifiedOp === r.log.journalOp && r.log.journalOp === r.op, 'a complete log');
  r.lastTimestampUs = timestampUs;
  const made = makePrepare(
    {
      replica: r.replica,
      cluster: r.cluster,
      view: r.view,
      requestCount: requests.length,
      op: asOp(r.op + 1),
      commit: r.commitMax,
      timestampUs: asTimestampUs(timestampUs),
      parent: r.log.journalChecksum,
    },
    encodeBatch(requests),
  );
  r.log.appendNext(made);
  r.pipelineOks.set(made.header.op, new Set());
  r.journalAppend(made);
  r.event({
    kind: 'prepared',
    op: made.header.op,
    requestCount: requests.length,
    bodySizeBytes: made.body.length,
    requests,
  });
  r.broadcast({ kind: 'prepare', prepare: made });
  if (!r.prepareTimeout.running) r.prepareTimeout.start();
  // The canary counts the primary's own acknowledgement before its write is durable.
  if (r.canary === 'ack_before_fsync')
    acknowledge(r, made.header.op, made.header.checksum, r.replica);
}

/** Counts a prepare_ok (the primary's own once durable) and commits what has a quorum. */
export function acknowledge<Output>(
  r: ReplicaCore<Output>,
  op: Op,
  checksum: Uint8Array,
  from: ReplicaIndex,
): void {
  if (r.status !== 'normal' || !r.isPrimary) return;
  const oks = r.pipelineOks.get(op);
  const entry = r.log.get(op);
  if (oks === undefined || entry === undefined || !checksumEqual(entry.checksum, checksum)) return;
  oks.add(from);
  commitPipeline(r);
}

/** Commits the pipeline's head while it has a quorum, in op order, then executes and refills. */
export function commitPipeline<Output>(r: ReplicaCore<Output>): void {
  const quorum = r.canary === 'commit_without_quorum' ? 1 : r.quorum;
  while (r.commitMax < r.op) {
    const next = r.commitMax + 1;
    const oks = r.pipelineOks.get(next);
    assert(oks !== undefined, 'every pipeline op is counted');
    // Any quorum of durable copies commits, the primary's own among them or not: its own write
    // runs in parallel with the backups', and when theirs finish first they are enough (Raft
    // §10.2.1 does the same). A view change's quorum meets every commit quorum, so a committed
    // op survives the primary losing its unsynced copy in a crash.
    if (oks.size < quorum) break;
    r.lastCommitVotes = oks.size;
    r.pipelineOks.delete(next);
    r.commitMax = asOp(next);
  }
  executeCommitted(r);
  if (r.pipelineOks.size === 0) r.prepareTimeout.stop();
  preparePending(r);
}

/** Every heartbeat: the commit number to the backups, and whether a quorum is still reachable. */
export function primaryHeartbeat<Output>(r: ReplicaCore<Output>): void {
  r.broadcast({ kind: 'commit', commit: r.commitMax });
  checkPrimaryQuorum(r);
}

/**
 * Whether the primary still reaches a quorum: replicas heard in its view within an election
 * timeout, and not heard from in a later view since (a replica that moved on no longer counts,
 * at once: a view that started without this primary may already commit, and a primary that
 * keeps counting it would serve stale reads).
 */
export function checkPrimaryQuorum<Output>(r: ReplicaCore<Output>): void {
  let heard = 1;
  for (const other of r.otherReplicas()) {
    const heardTick = r.heardTick[other] ?? 0;
    const recent = r.ticks - heardTick <= r.tuning.electionTimeoutTicks;
    if (recent && heardTick > (r.movedOnTick[other] ?? 0)) heard += 1;
  }
  const reachable = heard >= r.quorum;
  if (reachable === r.quorumReachable) return;
  r.quorumReachable = reachable;
  r.emit({ kind: 'quorum_changed', view: r.view, reachable });
  r.event({ kind: 'primary_quorum', view: r.view, reachable });
}

/** Re-sends each unacknowledged pipeline prepare to the replicas that have not acknowledged it. */
export function retransmitPrepares<Output>(r: ReplicaCore<Output>): void {
  for (const [op, oks] of r.pipelineOks) {
    const entry = r.log.get(op);
    assert(entry !== undefined && entry.prepare !== null, 'the pipeline holds its prepares');
    for (const target of r.otherReplicas()) {
      if (!oks.has(target)) r.send(target, { kind: 'prepare', prepare: entry.prepare });
    }
  }
  if (r.pipelineOks.size > 0) r.prepareTimeout.start();
}

/**
 * A new primary starts its pipeline from the uncommitted ops of the log it adopted: they are
 * prepared again in its view (backups acknowledge them after start_view), and their requests are
 * in flight (so a client's retry is dropped, not prepared twice).
 */
export function startPipeline<Output>(r: ReplicaCore<Output>): void {
  r.pipelineOks.clear();
  r.pendingClients.clear();
  for (let op = r.commitMax + 1; op <= r.op; op++) {
    const entry = r.log.get(op);
    assert(entry !== undefined && entry.journaled && entry.prepare !== null, 'pipeline op held');
    r.pipelineOks.set(op, entry.durable ? new Set([r.replica]) : new Set());
    for (const request of decodeBatch(entry.prepare.body)) {
      r.pendingClients.set(request.clientId, request.requestNumber);
    }
    r.lastTimestampUs = Math.max(r.lastTimestampUs, entry.prepare.header.timestampUs);
  }
  assert(r.pipelineOks.size <= constants.viewChangeSuffixCountMax, 'pipeline bound');
  r.quorumReachable = true;
  r.heardTick.fill(r.ticks);
  r.movedOnTick.fill(Number.NEGATIVE_INFINITY);
  r.ackedOp.fill(0);
  r.lastCommitVotes = null;
  if (r.pipelineOks.size > 0) r.prepareTimeout.start();
}

/** Drops the primary's queue (never prepared, so safe to refuse) when it stops being primary. */
export function abandonPrimary<Output>(r: ReplicaCore<Output>): void {
  for (const request of r.queue) {
    reject(r, request, {
      code: errorCodes.not_ready,
      message: 'the view is changing; retry against the new leader',
    });
  }
  r.queue.length = 0;
  r.pipelineOks.clear();
  r.pendingClients.clear();
  r.prepareTimeout.stop();
}
