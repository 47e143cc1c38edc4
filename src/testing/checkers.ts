// The VOPR's safety checkers. Each proves one property of a run, and names itself when it
// fails, so a canary run can say which checker caught it:
//
//   committed_history   every replica's committed log extends one cluster-wide history: the
//                       prepare a replica commits at op k has the same checksum as every other
//                       replica's op k, commits are contiguous per replica, and commit
//                       timestamps strictly increase with op;
//   quorum_durability   when op k is committed for the first time anywhere, a quorum of
//                       replicas has made that very prepare durable (write + fsync completed
//                       in the simulated storage) — the root of "never acknowledge a write
//                       that a crash could lose";
//   state_digest        kernel state (stateDigest) is identical on every replica at the same
//                       commit number, checked before each op's first command and at the end,
//                       and client tables agree at the end;
//   exactly_once        no replica applies the same client request twice;
//   acked_writes        every acknowledged write (tenant, stream, append) is present — same
//                       ids, same events at the same offsets — on every replica that has
//                       committed past it at the end, and some replica has;
//   linearizability     the client-observed history is linearizable (linearizability.ts);
//   stale_reads         every stale read (any replica, bounded lag) returned a prefix of the
//                       one committed history of its stream.
// Liveness and determinism are judged by the simulator; replica_crash is an exception or
// assertion inside replica (or kernel) code.

import { toHex, checksumEqual } from '../core/checksum.js';
import type { Prepare } from '../core/header.js';
import { asStreamId, asTenantId } from '../core/types.js';
import { stateDigest, tenantById } from '../kernel/kernel.js';
import { checkLinearizable, registryModel, streamModel } from './linearizability.js';
import type {
  HistoryOp,
  Model,
  RegistryOutput,
  StreamInput,
  StreamOutput,
} from './linearizability.js';
import type { SimNode } from './sim_node.js';
import type { ObservedOp, Workload } from './workload.js';
import { errorCodes } from '../core/errors.js';

export type CheckerName =
  | 'committed_history'
  | 'quorum_durability'
  | 'state_digest'
  | 'exactly_once'
  | 'acked_writes'
  | 'linearizability'
  | 'stale_reads'
  | 'liveness'
  | 'determinism'
  | 'replica_crash';

export interface Violation {
  readonly checker: CheckerName;
  readonly message: string;
  readonly tick: number;
}

interface HistoryEntry {
  readonly checksum: Uint8Array;
  readonly timestampUs: number;
  readonly replica: number;
}

/** Cluster-wide safety state, fed as the run goes; the first violation is kept. */
export class SafetyChecker {
  violation: Violation | null = null;
  tick = 0;
  private readonly history: (HistoryEntry | undefined)[] = [];
  private readonly digests = new Map<number, { digest: string; replica: number }>();
  readonly stats = { commitsChecked: 0, digestsChecked: 0 };

  constructor(
    private readonly quorum: number,
    /** How many replicas ever made (op, checksum) durable. */
    private readonly durableCount: (op: number, checksum: Uint8Array) => number,
  ) {}

  report(checker: CheckerName, message: string): void {
    if (this.violation === null) this.violation = { checker, message, tick: this.tick };
  }

  get committedOpMax(): number {
    return this.history.length - 1;
  }

  /** The checksum of the prepare committed at `op`, or null if no replica committed it. */
  committedChecksum(op: number): Uint8Array | null {
    return this.history[op]?.checksum ?? null;
  }

  /** A replica committed `op`; `prepare` is what its journal holds there. */
  onCommitted(replica: number, op: number, expectedOp: number, prepare: Prepare | undefined): void {
    this.stats.commitsChecked += 1;
    if (op !== expectedOp) {
      return this.report(
        'committed_history',
        `replica ${replica} committed op ${op} after op ${expectedOp - 1}`,
      );
    }
    if (prepare === undefined || prepare.header.op !== op) {
      return this.report(
        'committed_history',
        `replica ${replica} committed op ${op} without journalling it`,
      );
    }
    const { checksum, timestampUs } = prepare.header;
    const known = this.history[op];
    if (known !== undefined) {
      if (!checksumEqual(known.checksum, checksum)) {
        this.report(
          'committed_history',
          `replica ${replica} committed op ${op} = ${toHex(checksum).slice(0, 16)}, but replica ` +
            `${known.replica} committed op ${op} = ${toHex(known.checksum).slice(0, 16)}`,
        );
      }
      return;
    }
    const previous = this.history[op - 1];
    if (op > 1 && previous !== undefined && previous.timestampUs >= timestampUs) {
      this.report('committed_history', `op ${op} has timestamp ${timestampUs} <= op ${op - 1}'s`);
    }
    const durable = this.durableCount(op, checksum);
    if (durable < this.quorum) {
      this.report(
        'quorum_durability',
        `op ${op} was committed by replica ${replica} while only ${durable} replica(s) had it ` +
          `durable (quorum ${this.quorum})`,
      );
    }
    this.history[op] = { checksum, timestampUs, replica };
  }

  /** A replica's kernel state after every op up to `op` (and none after). */
  onStateBoundary(replica: number, op: number, digest: string): void {
    this.stats.digestsChecked += 1;
    const known = this.digests.get(op);
    if (known === undefined) {
      this.digests.set(op, { digest, replica });
    } else if (known.digest !== digest) {
      this.report(
        'state_digest',
        `kernel state after op ${op}: replica ${replica} has ${digest.slice(0, 16)}, replica ` +
          `${known.replica} has ${known.digest.slice(0, 16)}`,
      );
    }
  }
}

/** End-of-run comparison of replicas that reached the same commit number. */
export function checkFinalStates(
  nodes: readonly SimNode[],
  clientIds: readonly string[],
  checker: SafetyChecker,
): void {
  const byCommit = new Map<number, { replica: number; digest: string; sessions: string }>();
  for (const node of nodes) {
    const replica = node.replica;
    if (replica === null) continue;
    const digest = toHex(stateDigest(node.state));
    const sessions = clientIds
      .map((id) => {
        const session = replica.clientTable.get(
          id as Parameters<typeof replica.clientTable.get>[0],
        );
        return session === undefined ? '-' : `${session.requestNumber}@${session.reply.op}`;
      })
      .join(',');
    const known = byCommit.get(replica.commitMin);
    if (known === undefined) {
      byCommit.set(replica.commitMin, { replica: node.index, digest, sessions });
      continue;
    }
    if (known.digest !== digest) {
      checker.report(
        'state_digest',
        `at commit ${replica.commitMin} replicas ${known.replica} and ${node.index} differ ` +
          'in kernel state',
      );
    } else if (known.sessions !== sessions) {
      checker.report(
        'state_digest',
        `at commit ${replica.commitMin} replicas ${known.replica} and ${node.index} differ ` +
          'in client tables',
      );
    }
  }
}

/**
 * Every acknowledged write is where its reply said, on every running replica that has
 * committed past it; and none is lost: if no replica has committed past it, some replica's
 * journal must still hold the committed prepare (so a live cluster could still commit it).
 */
export function checkAckedWrites(
  nodes: readonly SimNode[],
  workload: Workload,
  checker: SafetyChecker,
): void {
  const running = nodes.filter((n) => n.replica !== null);
  for (const op of workload.history) {
    const result = op.result;
    if (result === null || result.status !== 'ok' || op.commitOp === null) continue;
    const commitOp = op.commitOp;
    const what = `acknowledged ${op.kind} by client ${op.client} at op ${commitOp}`;
    const committed = running.filter((n) => (n.replica?.commitMin ?? 0) >= commitOp);
    if (committed.length === 0 && !journalled(nodes, checker, commitOp)) {
      return checker.report('acked_writes', `${what} is lost: committed and journalled nowhere`);
    }
    for (const node of committed) {
      const problem = ackedWriteProblem(node, op);
      if (problem !== null) {
        return checker.report('acked_writes', `replica ${node.index}: ${what}: ${problem}`);
      }
    }
  }
}

/** Whether any replica's disk holds the prepare the cluster committed at `op`, intact. */
function journalled(nodes: readonly SimNode[], checker: SafetyChecker, op: number): boolean {
  const checksum = checker.committedChecksum(op);
  if (checksum === null) return false;
  return nodes.some((n) => n.storage.read(op, checksum) !== null);
}

function ackedWriteProblem(node: SimNode, op: ObservedOp): string | null {
  const result = op.result;
  if (result === null || result.status !== 'ok') return null;
  switch (result.kind) {
    case 'create_tenant': {
      const tenant = tenantById(node.state, asTenantId(result.tenantId));
      return tenant?.name === result.name
        ? null
        : `tenant ${result.tenantId} is missing or renamed`;
    }
    case 'create_stream': {
      const stream = node.state.streams.get(asStreamId(result.streamId));
      const same = stream?.name === result.name && stream.tenantId === result.tenantId;
      return same ? null : `stream ${result.streamId} is missing or different`;
    }
    case 'append': {
      const events = node.streams.get(op.streamId ?? -1) ?? [];
      for (let i = 0; i < result.count; i++) {
        const found = events[result.firstOffset + i];
        if (found !== op.events[i]) {
          const expected = op.events[i] ?? '?';
          return `offset ${result.firstOffset + i} holds ${found ?? 'nothing'}, not ${expected}`;
        }
      }
      return null;
    }
  }
}

/**
 * Every stale read returned a prefix of its stream's one committed history: compared with the
 * stream on the running replica that committed most, the shorter of the two is a prefix of the
 * longer (a stale read may be behind, never different).
 */
export function checkStaleReads(
  nodes: readonly SimNode[],
  workload: Workload,
  checker: SafetyChecker,
): void {
  let reference: SimNode | null = null;
  for (const node of nodes) {
    const commit = node.replica?.commitMin;
    if (commit === undefined) continue;
    if (reference === null || commit > (reference.replica?.commitMin ?? 0)) reference = node;
  }
  if (reference === null) return;
  for (const op of workload.history) {
    if (op.kind !== 'stale_read' || op.readEvents === null || op.streamId === null) continue;
    const committed = reference.streams.get(op.streamId) ?? [];
    const length = Math.min(committed.length, op.readEvents.length);
    for (let i = 0; i < length; i++) {
      if (committed[i] === op.readEvents[i]) continue;
      const seen = op.readEvents[i] ?? '';
      return checker.report(
        'stale_reads',
        `a stale read of stream ${op.streamId} by client ${op.client} saw ${seen} at offset ` +
          `${i}, but replica ${reference.index} has ${committed[i] ?? ''} there`,
      );
    }
  }
}

// ----- linearizability over the client history -----

function historyOp<I, O>(op: ObservedOp, input: I, output: O | null): HistoryOp<I, O> {
  return {
    id: op.id,
    client: op.client,
    input,
    output,
    callTime: op.callTime,
    returnTime: op.returnTime,
  };
}

function streamOutput(op: ObservedOp): StreamOutput | null | 'excluded' {
  if (op.kind === 'read')
    return op.readEvents === null ? null : { kind: 'read', events: op.readEvents };
  const result = op.result;
  if (result === null) return null;
  if (result.status === 'ok' && result.kind === 'append') {
    return { kind: 'appended', firstOffset: result.firstOffset, count: result.count };
  }
  if (result.status === 'error' && result.code === errorCodes.offset_mismatch)
    return { kind: 'offset_mismatch' };
  return 'excluded';
}

function registryOutput(op: ObservedOp): RegistryOutput | null | 'excluded' {
  const result = op.result;
  if (result === null) return null;
  if (result.status === 'ok' && result.kind === 'create_tenant')
    return { kind: 'created', id: result.tenantId };
  if (result.status === 'ok' && result.kind === 'create_stream')
    return { kind: 'created', id: result.streamId };
  if (
    result.status === 'error' &&
    (result.code === errorCodes.tenant_exists || result.code === errorCodes.stream_exists)
  ) {
    return { kind: 'exists' };
  }
  return 'excluded';
}

export interface LinearizabilityReport {
  readonly objects: number;
  readonly operations: number;
  readonly unknown: number;
  readonly steps: number;
}

/** Splits the history by object (locality) and checks each part; reports the first failure. */
export function checkClientHistory(
  workload: Workload,
  checker: SafetyChecker,
): LinearizabilityReport {
  const streams = new Map<number, HistoryOp<StreamInput, StreamOutput>[]>();
  const tenants: HistoryOp<string, RegistryOutput>[] = [];
  const streamNames: HistoryOp<string, RegistryOutput>[] = [];
  for (const op of workload.history) {
    const command = op.command;
    if (op.kind === 'stale_read') continue; // Not linearizable by design: checkStaleReads.
    if (op.kind === 'read' || command?.kind === 'append') {
      const output = streamOutput(op);
      if (output === 'excluded' || op.streamId === null) continue;
      const input: StreamInput =
        command?.kind === 'append'
          ? { kind: 'append', events: op.events, expected: command.expectedOffset }
          : { kind: 'read' };
      const list = streams.get(op.streamId) ?? [];
      list.push(historyOp(op, input, output));
      streams.set(op.streamId, list);
      continue;
    }
    const output = registryOutput(op);
    if (output === 'excluded' || command === null) continue;
    if (command.kind === 'create_tenant') tenants.push(historyOp(op, command.name, output));
    if (command.kind === 'create_stream')
      streamNames.push(historyOp(op, `${command.tenantId}/${command.name}`, output));
  }
  const report = { objects: 0, operations: 0, unknown: 0, steps: 0 };
  const check = <S, I, O>(name: string, model: Model<S, I, O>, ops: HistoryOp<I, O>[]): void => {
    if (checker.violation !== null || ops.length === 0) return;
    report.objects += 1;
    report.operations += ops.length;
    const result = checkLinearizable(model, ops);
    report.steps += result.steps;
    if (result.status === 'unknown') report.unknown += 1;
    if (result.status !== 'violation') return;
    const prefix = result.prefix.slice(-3).join('; ');
    checker.report(
      'linearizability',
      `${name} is not linearizable: after [... ${prefix}] nothing can linearize ${result.stuckAt}`,
    );
  };
  check('the tenant registry', registryModel(), tenants);
  check('the stream registry', registryModel(), streamNames);
  for (const [streamId, ops] of [...streams].sort((a, b) => a[0] - b[0]))
    check(`stream ${streamId}`, streamModel(), ops);
  return report;
}
