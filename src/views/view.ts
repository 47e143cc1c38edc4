// Derived views: the interface every projection of the log implements. The stream read index is
// the first; state machines (rstmdb), SQL tables and the ledger's Merkle tree plug in the same
// way. A view is derived state only: it never feeds back into consensus, and it can always be
// thrown away and rebuilt from the log.
//
// The contract:
//   - it is fed every committed op, in op order, with the op's commit timestamp (the prepare's,
//     the same on every replica) and the requests that applied with the kernel's output for each;
//     an op whose requests were all skipped is fed too, so positions advance with the log;
//   - it keeps its applied position (`appliedOp`): the last op it has applied, 0 before any; the
//     next op it is fed is exactly appliedOp + 1 (the host skips ops at or below the position of
//     a view that starts ahead, e.g. one that kept its own durable store or loaded a checkpoint);
//   - reset() drops everything back to position 0, and the host rebuilds it by replaying the log
//     (views/view_host.ts); the rebuilt view's digest() equals the live one's at the same op;
//   - it answers its own queries through its own typed methods (the stream index: locate);
//   - checkpoints (issue 21) will add writing and loading its state at a position.
// Pure and deterministic in what it derives: the same ops give the same digest on every replica.

import type { Op, TimestampUs } from '../core/types.js';
import type { KernelOutput } from '../kernel/kernel.js';

/** One request of a committed op that applied (register or command). */
export interface AppliedCommand {
  /** The request's position in its prepare's batch. */
  readonly requestIndex: number;
  /** The kernel's output; null for a register. */
  readonly output: KernelOutput | null;
}

/** One committed op as a view sees it (vsr's ExecutedOp has this shape). */
export interface CommittedOp {
  readonly op: Op;
  readonly timestampUs: TimestampUs;
  readonly applied: readonly AppliedCommand[];
}

export interface View {
  /** A stable name: the `view` label of kmb_projection_applied_position and kmb_projection_lag. */
  readonly name: string;
  /** The last op applied; 0 before the first. */
  readonly appliedOp: number;
  /** Applies the op after appliedOp. */
  apply(op: CommittedOp): void;
  /** Drops every derived fact: back to position 0, to be rebuilt from the log. */
  reset(): void;
  /** A digest of the view's content: equal on replicas (and after a rebuild) at the same op. */
  digest(): Uint8Array;
}
