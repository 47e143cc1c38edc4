// Replay of committed ops for the derived views: journal records in, CommittedOp (views/view.ts)
// out, exactly as the replica emits them in its `executed` effects. Each record's batch goes
// through the replica's one executor (vsr/executor.ts) with a client table bounded as the data
// directory's superblock records (so sessions are evicted as the replica evicted them) and the
// kernel's state machine over a fresh kernel state; the outputs of the requests that applied
// become the op's `applied` list. `kimberlite-admin verify`'s replay (cli/admin_replay.ts) runs
// its batches through the same executeBatch, with its own checking state machine.
//
// Rebuilding a view from any position is a replay from op 1 that feeds the view only the ops
// above its position (ViewHost.catchUp): until checkpoints (issue 21) exist, the kernel state
// the ops depend on can only be had by executing the log from its start.
//
// Only committed ops belong in a view: a caller bounds the replay at an op known committed
// (the replica's commit, or max(superblock commit, header commits) offline), because ops above
// it may still be replaced by a view change.
//
// Invariants: records are executed in op order without a gap, from op 1 (asserted: a journal's
// entries are contiguous, and an offline caller checks before it calls); an op whose requests
// were all skipped still yields a CommittedOp with an empty `applied`.

import { assert } from '../core/assert.js';
import type { Op, TimestampUs } from '../core/types.js';
import { createState, kernelStateMachine } from '../kernel/kernel.js';
import type { KernelOutput, State } from '../kernel/kernel.js';
import type { Journal } from '../storage/journal.js';
import { decodeBatch } from '../vsr/batch.js';
import type { Request } from '../vsr/batch.js';
import { ClientTable } from '../vsr/client_table.js';
import { executeRequest } from '../vsr/executor.js';
import type { RequestOutcome } from '../vsr/executor.js';
import type { StateMachine } from '../vsr/replica_options.js';
import type { CommittedOp } from '../views/view.js';

/** What replay needs of a journal record (a Prepare, or a record the offline scanner read). */
export interface CommittedRecord {
  readonly header: { readonly op: Op; readonly timestampUs: TimestampUs };
  readonly body: Uint8Array;
}

/** One request that applied (a register, or a command with the state machine's output). */
export interface ExecutedRequest<Output> {
  readonly requestIndex: number;
  /** Null for a register. */
  readonly output: Output | null;
}

/** Called with every request's outcome, in batch order (skipped ones included). */
export type OnOutcome<Output> = (
  outcome: RequestOutcome<Output>,
  request: Request,
  requestIndex: number,
) => void;

/**
 * Executes one op's batch through the executor: the requests that applied, in batch order.
 * This is the one loop the offline tools run a batch with.
 */
export function executeBatch<Output>(
  table: ClientTable,
  machine: StateMachine<Output>,
  at: { readonly op: Op; readonly timestampUs: TimestampUs },
  requests: readonly Request[],
  onOutcome?: OnOutcome<Output>,
): ExecutedRequest<Output>[] {
  const applied: ExecutedRequest<Output>[] = [];
  requests.forEach((request, requestIndex) => {
    const site = { op: at.op, timestampUs: at.timestampUs, requestIndex };
    const outcome = executeRequest(table, machine, site, request);
    onOutcome?.(outcome, request, requestIndex);
    if (outcome.kind === 'registered') applied.push({ requestIndex, output: null });
    if (outcome.kind === 'applied') applied.push({ requestIndex, output: outcome.output });
  });
  return applied;
}

/** The kernel and the client table of a replay, executing one record after another. */
export class CommittedExecutor {
  readonly state: State = createState();
  private readonly table: ClientTable;
  private readonly machine: StateMachine<KernelOutput>;
  private opExecutedValue = 0;

  /** clientSessionCountMax: the bound the data directory's superblock records. */
  constructor(clientSessionCountMax: number) {
    this.table = new ClientTable(clientSessionCountMax);
    this.machine = kernelStateMachine(this.state);
  }

  /** The last op executed; 0 before the first. */
  get opExecuted(): number {
    return this.opExecutedValue;
  }

  /** Executes the record of the next op. Throws DecodeError when its body is not a batch. */
  execute(record: CommittedRecord): CommittedOp {
    const { op, timestampUs } = record.header;
    assert(op === this.opExecutedValue + 1, 'records are replayed in op order, without a gap');
    const requests = decodeBatch(record.body);
    const applied = executeBatch(this.table, this.machine, { op, timestampUs }, requests);
    this.opExecutedValue = op;
    return { op, timestampUs, applied };
  }
}

export interface ReplayOptions {
  /** The client table bound the data directory's superblock records (sessionBoundOf). */
  readonly clientSessionCountMax: number;
}

/** The committed ops of `records` (from op 1, in order), executed over a fresh kernel state. */
export async function* committedOps(
  records: Iterable<CommittedRecord> | AsyncIterable<CommittedRecord>,
  options: ReplayOptions,
): AsyncGenerator<CommittedOp> {
  const executor = new CommittedExecutor(options.clientSessionCountMax);
  for await (const record of records) yield executor.execute(record);
}

/**
 * The committed ops of a journal, op 1 through `opMax` (an op known committed: the replica's
 * commit; the journal's last op by default, right only when every op it holds is committed).
 */
export function journalCommittedOps(
  journal: Journal,
  options: ReplayOptions & { readonly opMax?: number },
): AsyncGenerator<CommittedOp> {
  const opMax = options.opMax ?? journal.opMax;
  assert(opMax <= journal.opMax, 'replay ends at an op the journal holds');
  return committedOps(journal.entries(1, opMax), options);
}
