// Execution: applying committed prepares to the state machine, in op order, exactly once. Each
// request of a prepare's batch goes through the one executor (executor.ts), which checks it
// against the client table (replicated session state: it changes only there, so every replica's
// table is the same at the same commit number), applies it and caches its reply; a normal
// primary also answers the client. Each executed op is one `executed` data effect (the shell
// feeds its derived views from it), emitted before the op's replies, and each applied request an
// `applied` telemetry event.
//
// Invariants: ops execute in order, only when committed (op <= commitMax) and verified to belong
// to the current log (op <= verifiedOp); a request applies only if it is its session's next one
// (except under the no_duplicate_detection canary).

import { assert } from '../core/assert.js';
import { errorCodes } from '../core/errors.js';
import type { Prepare } from '../core/header.js';
import type { ClientId, RequestNumber } from '../core/types.js';
import { decodeBatch } from './batch.js';
import type { Request } from './batch.js';
import { executeRequest as executeOne } from './executor.js';
import type { AppliedRequest, Reply } from './message.js';
import type { ReplicaCore } from './replica_core.js';

/** Executes every committed, verified op this replica holds, in order. */
export function executeCommitted<Output>(r: ReplicaCore<Output>): void {
  let executed = false;
  r.settleCommitClaim();
  while (r.commitMin < r.commitMax && r.commitMin < r.log.verifiedOp) {
    const prepare = r.log.advanceBase();
    executePrepare(r, prepare);
    executed = true;
  }
  if (executed) r.scrubber?.onCommit(r.commitMin);
}

function executePrepare<Output>(r: ReplicaCore<Output>, prepare: Prepare): void {
  const op = prepare.header.op;
  assert(op === r.commitMin, 'the base moved to the op being executed');
  assert(op <= r.commitMax, 'execute only what is committed');
  const requests = decodeBatch(prepare.body);
  const answering = r.isPrimary && r.status === 'normal' && !r.replaying;
  const applied: AppliedRequest<Output>[] = [];
  const replies: Reply[] = [];
  const evicted: ClientId[] = [];
  requests.forEach((request, requestIndex) => {
    const reply = executeRequest(r, prepare, request, requestIndex, { applied, evicted });
    if (r.pendingClients.get(request.clientId) === request.requestNumber) {
      r.pendingClients.delete(request.clientId);
    }
    if (reply !== null && answering) replies.push(reply);
  });
  // The views see the op before any client hears of it: a reply's reader finds its write.
  r.emit({ kind: 'executed', op, timestampUs: prepare.header.timestampUs, applied });
  for (const clientId of evicted) evict(r, clientId);
  for (const reply of replies) r.emit({ kind: 'reply', reply });
  r.event({
    kind: 'committed',
    op,
    timestampUs: prepare.header.timestampUs,
    requestCount: requests.length,
    bodySizeBytes: prepare.body.length,
    replay: r.replaying,
  });
}

/** What executing an op's requests collects, to emit once the whole op has executed. */
interface OpResults<Output> {
  readonly applied: AppliedRequest<Output>[];
  readonly evicted: ClientId[];
}

function executeRequest<Output>(
  r: ReplicaCore<Output>,
  prepare: Prepare,
  request: Request,
  requestIndex: number,
  results: OpResults<Output>,
): Reply | null {
  const { op, timestampUs } = prepare.header;
  const site = { op, timestampUs, requestIndex };
  const outcome = executeOne(r.clientTable, r.options.stateMachine, site, request, {
    applyDuplicates: r.canary === 'no_duplicate_detection',
  });
  if (outcome.kind === 'skipped') return null;
  const { clientId, requestNumber } = request;
  const registered = outcome.kind === 'registered';
  if (registered) r.event({ kind: 'session_registered', clientId, op });
  const output = registered ? null : outcome.output;
  const operation = request.operation;
  // Data for the shell's views (in the op's executed effect), and the same fact as telemetry.
  const fact: AppliedRequest<Output> = {
    op,
    requestIndex,
    clientId,
    requestNumber,
    operation,
    output,
  };
  results.applied.push(fact);
  r.event({ kind: 'applied', ...fact });
  if (registered && outcome.evicted !== null) results.evicted.push(outcome.evicted);
  return outcome.reply;
}

function evict<Output>(r: ReplicaCore<Output>, clientId: ClientId): void {
  r.event({ kind: 'session_evicted', clientId });
  if (!r.isPrimary || r.status !== 'normal' || r.replaying) return;
  r.emit({
    kind: 'reject',
    clientId,
    requestNumber: 0 as RequestNumber,
    code: errorCodes.session_evicted,
    message: 'session evicted: the client table is full and this session was the oldest',
    leaderHint: -1,
  });
}
