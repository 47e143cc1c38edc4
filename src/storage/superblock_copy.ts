// One copy of the superblock: its state, its sequence number, and the codec for its fixed-size
// slot in superblock.kmb.
//
// Layout, little-endian, constants.superblockCopySizeBytes bytes:
//   0  checksum      [32]  SHA-256 of bytes 32..end of the copy
//   32 magic         u32   'KMBS'
//   36 version       u16
//   38 copyIndex     u16   the slot this copy was written to (a misdirected write is detected)
//   40 sequence      u64   +1 on every superblock write; the newest valid copy wins
//   48 cluster       u64
//   56 replica       u8
//   57 replicaCount  u8
//   58 clientSessionCountMax u32  the client table's bound the data was executed with; 0 in
//                     copies written before it was recorded: unknown (sessionBoundOf gives the
//                     default; a server adopts its configured bound and records it once)
//   62 reserved      [2]   zero
//   64 view          u64
//   72 logView       u64   the last view in which this replica's status was normal
//   80 commit        u64
//   88 clusterName   u32 length + UTF-8
//   …  zero padding to the end of the copy
//
// Invariants: the checksum covers every other byte of the copy, padding included; decoding
// never throws on bytes from disk, it names the problem instead; encoding asserts the state
// is well-formed (a bad state is a programmer error).

import { assert } from '../core/assert.js';
import { DecodeError, Reader, Writer } from '../core/binary.js';
import { checksumEqual, sha256, sha256SizeBytes } from '../core/checksum.js';
import { constants } from '../core/constants.js';
import { asOp, asReplicaIndex, asView } from '../core/types.js';
import type { Op, ReplicaIndex, View } from '../core/types.js';
import { isAllZero } from './chunk_cursor.js';

/** The bound assumed for an old superblock (whose copies hold 0 in its place) offline. */
export const clientSessionCountMaxDefault = constants.clientSessionCountMax;
/** clientSessionCountMax of a superblock written before the bound was recorded. */
export const clientSessionCountUnrecorded = 0;

/** The bound a superblock records, or the default when it predates the field. */
export function sessionBoundOf(state: { readonly clientSessionCountMax: number }): number {
  const recorded = state.clientSessionCountMax;
  return recorded === clientSessionCountUnrecorded ? clientSessionCountMaxDefault : recorded;
}
const u32Max = 0xffff_ffff;

export const superblockMagic = 0x53424d4b; // 'KMBS' read little-endian
export const superblockVersion = 1;
/** Bytes of the cluster name kept in the superblock. */
export const superblockClusterNameBytesMax = 256;
const fixedFieldsSizeBytes = 88;
const textEncoder = new TextEncoder();

assert(
  fixedFieldsSizeBytes + 4 + superblockClusterNameBytesMax <= constants.superblockCopySizeBytes,
  'a superblock copy holds the longest cluster name',
);

export interface SuperblockState {
  readonly cluster: number;
  readonly clusterName: string;
  readonly replica: ReplicaIndex;
  readonly replicaCount: number;
  readonly view: View;
  readonly logView: View;
  readonly commit: Op;
  /**
   * The client table's bound (sessions kept before the oldest is evicted) this replica executes
   * with, fixed at format time: replaying the journal with another bound would diverge.
   */
  readonly clientSessionCountMax: number;
}

export type CopyDecoding =
  | { readonly ok: true; readonly sequence: number; readonly state: SuperblockState }
  | { readonly ok: false; readonly problem: string };

/** Why a state could not be stored, or null when it is well-formed. */
export function stateProblem(state: SuperblockState): string | null {
  if (!Number.isSafeInteger(state.cluster) || state.cluster < 0) return 'cluster id';
  if (!Number.isInteger(state.replicaCount) || state.replicaCount < 1) return 'replica count';
  if (state.replicaCount > constants.replicaCountMax) return 'replica count above the maximum';
  if (!Number.isInteger(state.replica) || state.replica >= state.replicaCount) {
    return `replica ${state.replica} is not below the replica count ${state.replicaCount}`;
  }
  const sessions = state.clientSessionCountMax;
  if (!Number.isInteger(sessions) || sessions < 0 || sessions > u32Max) {
    return `client session bound ${sessions}`;
  }
  if (state.logView > state.view) return `log view ${state.logView} is after view ${state.view}`;
  if (textEncoder.encode(state.clusterName).length > superblockClusterNameBytesMax) {
    return 'cluster name too long';
  }
  return null;
}

export function encodeCopy(
  copyIndex: number,
  sequence: number,
  state: SuperblockState,
): Uint8Array {
  assert(copyIndex >= 0 && copyIndex < constants.superblockCopyCount, 'copy index');
  assert(Number.isSafeInteger(sequence) && sequence >= 1, 'sequence starts at 1');
  const problem = stateProblem(state);
  assert(problem === null, `superblock state: ${problem}`);
  const writer = new Writer(constants.superblockCopySizeBytes);
  writer.zeros(sha256SizeBytes).u32(superblockMagic).u16(superblockVersion).u16(copyIndex);
  writer.u64(sequence).u64(state.cluster).u8(state.replica).u8(state.replicaCount);
  writer.u32(state.clientSessionCountMax).zeros(2);
  writer.u64(state.view).u64(state.logView).u64(state.commit);
  assert(writer.length === fixedFieldsSizeBytes, 'fixed fields size');
  writer.string(state.clusterName);
  writer.zeros(constants.superblockCopySizeBytes - writer.length);
  const bytes = writer.finish();
  assert(bytes.length === constants.superblockCopySizeBytes, 'copy size');
  bytes.set(sha256(bytes.subarray(sha256SizeBytes)), 0);
  return bytes;
}

export function decodeCopy(bytes: Uint8Array, copyIndex: number): CopyDecoding {
  if (bytes.length < constants.superblockCopySizeBytes) {
    return { ok: false, problem: `copy is missing or short (${bytes.length} bytes)` };
  }
  const raw = bytes.subarray(0, constants.superblockCopySizeBytes);
  if (isAllZero(raw)) return { ok: false, problem: 'copy is all zeros' };
  if (!checksumEqual(raw.subarray(0, sha256SizeBytes), sha256(raw.subarray(sha256SizeBytes)))) {
    return { ok: false, problem: 'checksum mismatch' };
  }
  try {
    return decodeFields(new Reader(raw), copyIndex);
  } catch (error) {
    if (error instanceof DecodeError) return { ok: false, problem: `malformed: ${error.message}` };
    throw error;
  }
}

function decodeFields(reader: Reader, copyIndex: number): CopyDecoding {
  reader.skip(sha256SizeBytes);
  if (reader.u32() !== superblockMagic) return { ok: false, problem: 'wrong magic' };
  const version = reader.u16();
  if (version !== superblockVersion) return { ok: false, problem: `unknown version ${version}` };
  const writtenIndex = reader.u16();
  if (writtenIndex !== copyIndex) {
    return { ok: false, problem: `copy ${writtenIndex} found in slot ${copyIndex}` };
  }
  const sequence = reader.u64();
  const cluster = reader.u64();
  const replica = asReplicaIndex(reader.u8());
  const replicaCount = reader.u8();
  const sessionsRecorded = reader.u32();
  if (!isAllZero(reader.fixed(2))) return { ok: false, problem: 'reserved bytes are not zero' };
  const view = asView(reader.u64());
  const logView = asView(reader.u64());
  const commit = asOp(reader.u64());
  const clusterName = reader.string(superblockClusterNameBytesMax);
  if (!isAllZero(reader.fixed(reader.remaining))) {
    return { ok: false, problem: 'padding is not zero' };
  }
  const state: SuperblockState = {
    cluster,
    clusterName,
    replica,
    replicaCount,
    view,
    logView,
    commit,
    clientSessionCountMax: sessionsRecorded,
  };
  const problem = stateProblem(state);
  if (problem !== null) return { ok: false, problem: `invalid state: ${problem}` };
  if (sequence < 1) return { ok: false, problem: 'sequence 0' };
  return { ok: true, sequence, state };
}

export function stateEqual(a: SuperblockState, b: SuperblockState): boolean {
  return (
    a.cluster === b.cluster &&
    a.clusterName === b.clusterName &&
    a.replica === b.replica &&
    a.replicaCount === b.replicaCount &&
    a.view === b.view &&
    a.logView === b.logView &&
    a.commit === b.commit &&
    a.clientSessionCountMax === b.clientSessionCountMax
  );
}
