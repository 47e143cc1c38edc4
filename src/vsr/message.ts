// What goes into and out of the replica: messages between replicas, client replies and
// rejections, and the effects the replica returns for the shell to perform (HOUSE_RULES §3).
// The replica never performs I/O; the shell performs these effects in order, and a
// `journal_append` is complete (written and fdatasynced) before the shell reports it durable.

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
import type { Operation } from './batch.js';

export type ReplicaMessage =
  | { readonly kind: 'prepare'; readonly prepare: Prepare }
  | {
      readonly kind: 'prepare_ok';
      readonly replica: ReplicaIndex;
      readonly view: View;
      readonly op: Op;
      /** The checksum of the prepare being acknowledged. */
      readonly checksum: Uint8Array;
    }
  | {
      readonly kind: 'commit';
      readonly replica: ReplicaIndex;
      readonly view: View;
      readonly commit: Op;
    };

/** A committed request's answer; cached in the client table for duplicates. */
export interface Reply {
  readonly clientId: ClientId;
  readonly requestNumber: RequestNumber;
  readonly op: Op;
  readonly timestampUs: TimestampUs;
  /** The state machine's encoded result; empty for `register`. */
  readonly result: Uint8Array;
}

export type ReplicaStatus = 'recovering' | 'normal' | 'view_change';

export type ReplicaEvent<Output> =
  | { readonly kind: 'status_changed'; readonly status: ReplicaStatus; readonly view: View }
  | {
      readonly kind: 'prepared';
      readonly op: Op;
      readonly requestCount: number;
      readonly bodySizeBytes: number;
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
  | {
      readonly kind: 'applied';
      readonly op: Op;
      readonly requestIndex: number;
      readonly clientId: ClientId;
      readonly operation: Operation;
      readonly output: Output | null;
    }
  | { readonly kind: 'session_registered'; readonly clientId: ClientId; readonly op: Op }
  | { readonly kind: 'session_evicted'; readonly clientId: ClientId };

export type Effect<Output> =
  | { readonly kind: 'journal_append'; readonly prepare: Prepare }
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
  | { readonly kind: 'event'; readonly event: ReplicaEvent<Output> };
