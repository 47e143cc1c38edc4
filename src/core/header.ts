// The header of a prepare: the one record format shared by the replica (which makes it), the
// journal (which persists it) and the wire (which carries it). DESIGN.md §3.
//
// Layout, little-endian, 160 bytes:
//   0  checksum       [32]  SHA-256 of bytes 32..160 (this header's identity)
//   32 magic          u32   'KMBP'
//   36 version        u16
//   38 command        u8    1 = prepare
//   39 replica        u8    the primary that made it
//   40 cluster        u64   cluster id (derived from the cluster name)
//   48 view           u32
//   52 requestCount   u32
//   56 op             u64
//   64 commit         u64   the primary's commit number when it made this prepare
//   72 timestampUs    u64   microseconds since the epoch, monotonic across prepares
//   80 parent         [32]  checksum of the prepare at op - 1 (the hash chain)
//   112 bodyChecksum  [32]  SHA-256 of the body
//   144 bodySize      u32
//   148 reserved      [12]  zero
//
// Invariants: checksum covers every other header byte, and bodyChecksum covers the body, so a
// checksum names exactly one (header, body) pair. parent links each prepare to its predecessor,
// so the journal is a hash chain from the root prepare (op 0), which is derived from the cluster.

import { assert } from './assert.js';
import { DecodeError, Reader, Writer } from './binary.js';
import { checksumEqual, sha256, sha256SizeBytes } from './checksum.js';
import { asOp, asReplicaIndex, asTimestampUs, asView } from './types.js';
import type { Op, ReplicaIndex, TimestampUs, View } from './types.js';

export const headerSizeBytes = 160;
export const headerMagic = 0x504d424b; // 'KMBP' read little-endian
export const headerVersion = 1;
export const headerCommand = { prepare: 1 } as const;

export interface PrepareHeader {
  readonly checksum: Uint8Array;
  readonly replica: ReplicaIndex;
  readonly cluster: number;
  readonly view: View;
  readonly requestCount: number;
  readonly op: Op;
  readonly commit: Op;
  readonly timestampUs: TimestampUs;
  readonly parent: Uint8Array;
  readonly bodyChecksum: Uint8Array;
  readonly bodySizeBytes: number;
}

export type PrepareHeaderFields = Omit<
  PrepareHeader,
  'checksum' | 'bodyChecksum' | 'bodySizeBytes'
>;

/** A prepare as it is journalled and sent: the encoded header and the body it covers. */
export interface Prepare {
  readonly header: PrepareHeader;
  readonly headerBytes: Uint8Array;
  readonly body: Uint8Array;
}

function writeFields(writer: Writer, header: Omit<PrepareHeader, 'checksum'>): void {
  writer
    .u32(headerMagic)
    .u16(headerVersion)
    .u8(headerCommand.prepare)
    .u8(header.replica)
    .u64(header.cluster)
    .u32(header.view)
    .u32(header.requestCount)
    .u64(header.op)
    .u64(header.commit)
    .u64(header.timestampUs)
    .fixed(header.parent, sha256SizeBytes)
    .fixed(header.bodyChecksum, sha256SizeBytes)
    .u32(header.bodySizeBytes)
    .zeros(12);
}

/** Builds a prepare: computes the body checksum and the header checksum. */
export function makePrepare(fields: PrepareHeaderFields, body: Uint8Array): Prepare {
  assert(fields.parent.length === sha256SizeBytes, 'parent checksum size');
  const unsealed = { ...fields, bodyChecksum: sha256(body), bodySizeBytes: body.length };
  const writer = new Writer(headerSizeBytes);
  writer.zeros(sha256SizeBytes);
  writeFields(writer, unsealed);
  const headerBytes = writer.finish();
  assert(headerBytes.length === headerSizeBytes, 'header size');
  const checksum = sha256(headerBytes.subarray(sha256SizeBytes));
  headerBytes.set(checksum, 0);
  const header: PrepareHeader = { ...unsealed, checksum };
  return { header, headerBytes, body };
}

export type HeaderProblem =
  'short' | 'magic' | 'version' | 'command' | 'header_checksum' | 'fields';

/**
 * Decodes and verifies a header from untrusted bytes. Returns the problem instead of throwing,
 * so that the journal can tell a torn tail from corruption and the wire can answer with a code.
 */
export function decodeHeader(
  bytes: Uint8Array,
): { ok: true; header: PrepareHeader } | { ok: false; problem: HeaderProblem } {
  if (bytes.length < headerSizeBytes) return { ok: false, problem: 'short' };
  const raw = bytes.subarray(0, headerSizeBytes);
  const checksum = raw.subarray(0, sha256SizeBytes);
  if (!checksumEqual(checksum, sha256(raw.subarray(sha256SizeBytes)))) {
    return { ok: false, problem: 'header_checksum' };
  }
  try {
    const reader = new Reader(raw);
    reader.skip(sha256SizeBytes);
    if (reader.u32() !== headerMagic) return { ok: false, problem: 'magic' };
    if (reader.u16() !== headerVersion) return { ok: false, problem: 'version' };
    if (reader.u8() !== headerCommand.prepare) return { ok: false, problem: 'command' };
    const replica = asReplicaIndex(reader.u8());
    const cluster = reader.u64();
    const view = asView(reader.u32());
    const requestCount = reader.u32();
    const op = asOp(reader.u64());
    const commit = asOp(reader.u64());
    const timestampUs = asTimestampUs(reader.u64());
    const parent = reader.fixed(sha256SizeBytes).slice();
    const bodyChecksum = reader.fixed(sha256SizeBytes).slice();
    const bodySizeBytes = reader.u32();
    const header: PrepareHeader = {
      checksum: checksum.slice(),
      replica,
      cluster,
      view,
      requestCount,
      op,
      commit,
      timestampUs,
      parent,
      bodyChecksum,
      bodySizeBytes,
    };
    return { ok: true, header };
  } catch (error) {
    if (error instanceof DecodeError) return { ok: false, problem: 'fields' };
    throw error;
  }
}

export function bodyMatches(header: PrepareHeader, body: Uint8Array): boolean {
  return body.length === header.bodySizeBytes && checksumEqual(sha256(body), header.bodyChecksum);
}

/** The cluster id: the first 6 bytes of SHA-256 of the cluster name, as a safe integer. */
export function clusterIdFromName(clusterName: string): number {
  const digest = sha256(new TextEncoder().encode(`kimberlite cluster ${clusterName}`));
  let value = 0;
  for (let i = 0; i < 6; i++) value = value * 256 + (digest[i] ?? 0);
  return value;
}

/**
 * The root prepare (op 0): never written, derived from the cluster id alone, so every replica of
 * a cluster starts its hash chain from the same checksum.
 */
export function rootPrepare(cluster: number): Prepare {
  return makePrepare(
    {
      replica: asReplicaIndex(0),
      cluster,
      view: asView(0),
      requestCount: 0,
      op: asOp(0),
      commit: asOp(0),
      timestampUs: asTimestampUs(0),
      parent: new Uint8Array(sha256SizeBytes),
    },
    new Uint8Array(0),
  );
}
