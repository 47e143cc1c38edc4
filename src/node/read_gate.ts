// When a replica may answer a read from its executed state: the rules of linearizable and stale
// reads, in one place for the node (queries) and the simulator (its reads run these very rules).
// The gate learns from the replica's data effects (vsr/effect_driver.ts ReadSink): reads_ready
// (this replica became primary and may answer once it has executed its view's log) and
// quorum_changed (the primary lost or regained contact with a quorum).
//
// Linearizable: a normal primary that still hears a quorum and has executed every op its view
// started with, so the read reflects every write acknowledged before it. A deposed primary notices
// lost quorum before the others can elect a successor (the quorum timeout is shorter than the
// election timeout), so it stops serving first. Stale: any normal replica that trails its known
// commit by at most the reader's bound.

import { errorCodes } from '../core/errors.js';
import type { ErrorCode } from '../core/errors.js';
import type { Op, View } from '../core/types.js';
import type { Consistency } from '../net/client_protocol.js';
import type { ReadSink } from '../vsr/effect_driver.js';

/** What the gate reads of the replica. */
export interface ReadableReplica {
  readonly status: string;
  readonly isPrimary: boolean;
  readonly primaryIndex: number;
  readonly commitMin: number;
  readonly commitMax: number;
}

/** A read's consistency, as the client protocol carries it. */
export type ReadConsistency = Consistency;

export interface ReadRefusal {
  readonly code: ErrorCode;
  readonly message: string;
}

export class ReadGate implements ReadSink {
  /** A new primary serves reads once it has executed its view's log up to this op. */
  private readableFromOp = 0;
  /** The primary's own view of whether a quorum answers it. */
  private quorumReachable = true;

  readsReady(_view: View, op: Op): void {
    this.readableFromOp = op;
    this.quorumReachable = true;
  }

  quorumChanged(_view: View, reachable: boolean): void {
    this.quorumReachable = reachable;
  }

  /** Whether this replica, as primary, hears a quorum (meaningful only on a primary). */
  get primaryHearsQuorum(): boolean {
    return this.quorumReachable;
  }

  /** Why the replica may not answer a read now, or null when it may. */
  refusal(replica: ReadableReplica, consistency: ReadConsistency): ReadRefusal | null {
    if (replica.status !== 'normal') {
      return notReady(`replica is ${replica.status}; retry shortly`);
    }
    if (consistency.kind === 'stale') {
      const lagOps = replica.commitMax - replica.commitMin;
      if (lagOps <= consistency.lagOpsMax) return null;
      const bound = `(bound ${consistency.lagOpsMax})`;
      return notReady(`replica trails its known commit by ${lagOps} ops ${bound}; retry shortly`);
    }
    if (!replica.isPrimary) {
      return { code: errorCodes.not_leader, message: `replica ${replica.primaryIndex} is leader` };
    }
    if (!this.quorumReachable) return notReady('the leader cannot reach a quorum; retry shortly');
    if (replica.commitMin < this.readableFromOp) {
      return notReady('the new leader is still executing its log; retry shortly');
    }
    return null;
  }
}

function notReady(message: string): ReadRefusal {
  return { code: errorCodes.not_ready, message };
}
