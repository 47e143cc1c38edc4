// The range checks every peer message passes before the replica acts on it (issue 14): a peer
// (or anything posing as one: replica links are not authenticated yet) may send any number in
// any field. A message is refused, with a reason, when a field could not be encoded again, or
// when acting on it could move this replica to a view or op that it could not encode, persist,
// restart from or increment: every view must leave constants.viewHeadroomCount view changes of
// room below constants.viewMax (the u32 of the wire, the prepare header and the superblock), and
// every op or commit number constants.opHeadroomCount ops of room below constants.opMax (the
// largest safe integer, the u64 of the wire and the journal).
//
// Refusing a message is always safe: VSR tolerates the loss of any message. The checks are pure
// and allocate nothing for the common kinds (they run on every message).

import { constants } from '../core/constants.js';
import { sha256SizeBytes } from '../core/checksum.js';
import type { Prepare } from '../core/header.js';
import type { ReplicaMessage, SuffixEntry } from './message.js';

/** The highest view a replica accepts from a peer. */
export const peerViewMax = constants.viewMax - constants.viewHeadroomCount;
/** The highest op (or commit number) a replica accepts from a peer. */
export const peerOpMax = constants.opMax - constants.opHeadroomCount;
/** The largest value of a u32 field (nonces). */
const u32Max = 0xffff_ffff;

/** Why a message was refused by the range checks. */
export type BoundsProblem = 'view_out_of_range' | 'op_out_of_range' | 'field_invalid';

function isView(value: unknown): boolean {
  return Number.isSafeInteger(value) && (value as number) >= 0 && (value as number) <= peerViewMax;
}

function isOp(value: unknown): boolean {
  return Number.isSafeInteger(value) && (value as number) >= 0 && (value as number) <= peerOpMax;
}

/** A u64 that is not an op (times): any non-negative safe integer. */
function isU64(value: unknown): boolean {
  return Number.isSafeInteger(value) && (value as number) >= 0;
}

function isU32(value: unknown): boolean {
  return Number.isSafeInteger(value) && (value as number) >= 0 && (value as number) <= u32Max;
}

function isChecksum(value: unknown): boolean {
  return value instanceof Uint8Array && value.length === sha256SizeBytes;
}

function prepareProblem(prepare: Prepare | null | undefined): BoundsProblem | null {
  if (prepare === null || prepare === undefined || typeof prepare !== 'object') {
    return 'field_invalid';
  }
  const header = prepare.header as Prepare['header'] | undefined;
  if (header === undefined || !(prepare.headerBytes instanceof Uint8Array)) return 'field_invalid';
  if (!(prepare.body instanceof Uint8Array)) return 'field_invalid';
  if (!isView(header.view)) return 'view_out_of_range';
  if (!isOp(header.op) || !isOp(header.commit)) return 'op_out_of_range';
  if (!isChecksum(header.checksum) || !isChecksum(header.parent)) return 'field_invalid';
  return null;
}

function suffixProblem(suffix: readonly SuffixEntry[] | undefined): BoundsProblem | null {
  if (!Array.isArray(suffix)) return 'field_invalid';
  if (suffix.length > constants.viewChangeSuffixCountMax) return 'field_invalid';
  for (const entry of suffix) {
    if (typeof entry !== 'object' || entry === null) return 'field_invalid';
    if (!isOp(entry.op)) return 'op_out_of_range';
    if (!isChecksum(entry.checksum)) return 'field_invalid';
    if (entry.prepare !== null) {
      const problem = prepareProblem(entry.prepare);
      if (problem !== null) return problem;
    }
  }
  return null;
}

type LogMessage = Extract<ReplicaMessage, { kind: 'do_view_change' | 'start_view' }>;

function logProblem(message: LogMessage): BoundsProblem | null {
  if (!isOp(message.op) || !isOp(message.commitMax) || !isOp(message.anchorOp)) {
    return 'op_out_of_range';
  }
  if (!isChecksum(message.anchorChecksum)) return 'field_invalid';
  return suffixProblem(message.suffix);
}

/**
 * Null when every field of the message is in range (its sender and view are checked by the
 * caller first), else why it must be refused.
 */
export function messageProblem(message: ReplicaMessage): BoundsProblem | null {
  switch (message.kind) {
    case 'prepare':
    case 'repair_prepare':
      return prepareProblem(message.prepare);
    case 'prepare_ok':
      if (!isOp(message.op)) return 'op_out_of_range';
      return isChecksum(message.checksum) ? null : 'field_invalid';
    case 'commit':
      return isOp(message.commit) ? null : 'op_out_of_range';
    case 'ping':
      return isU64(message.pingMonotonicUs) ? null : 'field_invalid';
    case 'pong':
      return isU64(message.pingMonotonicUs) && isU64(message.pongRealtimeUs)
        ? null
        : 'field_invalid';
    case 'start_view_change':
      return null;
    case 'do_view_change':
      if (!isView(message.logView)) return 'view_out_of_range';
      return logProblem(message);
    case 'start_view':
      if (!isU32(message.nonce)) return 'field_invalid';
      return logProblem(message);
    case 'request_start_view':
      return isU32(message.nonce) ? null : 'field_invalid';
    case 'request_prepare':
    case 'nack_prepare':
      if (!isOp(message.op)) return 'op_out_of_range';
      return message.checksum === null || isChecksum(message.checksum) ? null : 'field_invalid';
    case 'request_prepares':
      return isOp(message.opFirst) && isOp(message.opLast) ? null : 'op_out_of_range';
    default:
      return 'field_invalid';
  }
}

/** Whether a view number from a peer is one this replica may hold. */
export function isPeerView(view: unknown): boolean {
  return isView(view);
}
