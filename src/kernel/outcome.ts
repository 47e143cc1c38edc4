// What apply() takes besides the command, and what it gives back: the result for the client and
// the effects for the node shell (read index, subscriptions, metrics). Effects are data, in the
// order they happened; a rejected command has no effects.
//
// Invariants: an 'ok' result comes with exactly one effect describing the change; an 'error'
// result comes with none. The events of one events_appended effect are exactly the command's
// events, in order, at offsets firstOffset .. firstOffset + count - 1.

import type { ErrorName } from '../core/errors.js';
import { errorCodes } from '../core/errors.js';
import type { ClientId, Offset, Op, StreamId, TenantId, TimestampUs } from '../core/types.js';
import type { CommandResult, DataClass } from './command.js';

export interface CommandMeta {
  /** The op of the prepare that carries the command. */
  readonly op: Op;
  /** The prepare's timestamp: the commit time of everything the command creates. */
  readonly timestampUs: TimestampUs;
  readonly clientId: ClientId;
  /** The position of the request inside its prepare's batch, from 0. */
  readonly requestIndex: number;
}

export type KernelEffect =
  | { readonly kind: 'tenant_created'; readonly tenantId: TenantId; readonly name: string }
  | {
      readonly kind: 'stream_created';
      readonly tenantId: TenantId;
      readonly streamId: StreamId;
      readonly name: string;
      readonly dataClass: DataClass;
    }
  | {
      readonly kind: 'events_appended';
      readonly tenantId: TenantId;
      readonly streamId: StreamId;
      readonly firstOffset: Offset;
      readonly count: number;
      readonly op: Op;
      readonly requestIndex: number;
      readonly timestampUs: TimestampUs;
    };

export interface ApplyOutcome {
  readonly result: CommandResult;
  readonly effects: KernelEffect[];
}

export type ErrorResult = Extract<CommandResult, { status: 'error' }>;

export function errorResult(name: ErrorName, message: string): ErrorResult {
  return { status: 'error', code: errorCodes[name], message };
}

export function rejected(error: ErrorResult): ApplyOutcome {
  return { result: error, effects: [] };
}
