// The header at the start of every journal segment file, and the segment file names.
//
// Layout, little-endian, 64 bytes:
//   0  checksum     [32]  SHA-256 of bytes 32..64
//   32 magic        u32   'KMBJ'
//   36 version      u16
//   38 reserved     u16   zero
//   40 cluster      u64   the cluster id every record in the segment belongs to
//   48 segmentIndex u64   equals the index in the file name (a misplaced file is detected)
//   56 opFirst      u64   the op of the first record in the segment (the last op + 1 if empty)
//
// Segment files are named by their zero-padded index: 00000000.kjl, 00000001.kjl, ... Indexes
// start at 0 and are contiguous; records follow the header back to back with no padding.
// Invariant: decoding never throws on bytes from disk; it returns the problem instead.

import { assert } from '../core/assert.js';
import { DecodeError, Reader, Writer } from '../core/binary.js';
import { checksumEqual, sha256, sha256SizeBytes } from '../core/checksum.js';

export const segmentHeaderSizeBytes = 64;
export const segmentMagic = 0x4a424d4b; // 'KMBJ' read little-endian
export const segmentVersion = 1;
/** Digits in a segment file name; also bounds the segment index. */
export const segmentNameDigits = 8;
export const segmentIndexMax = 10 ** segmentNameDigits - 1;
export const segmentFileSuffix = '.kjl';

export interface SegmentHeader {
  readonly cluster: number;
  readonly segmentIndex: number;
  readonly opFirst: number;
}

export type SegmentHeaderProblem = 'short' | 'header_checksum' | 'magic' | 'version' | 'fields';

export function encodeSegmentHeader(header: SegmentHeader): Uint8Array {
  assert(header.segmentIndex >= 0 && header.segmentIndex <= segmentIndexMax, 'segment index');
  assert(header.opFirst >= 1, 'a segment starts at op 1 or later');
  const writer = new Writer(segmentHeaderSizeBytes);
  writer
    .zeros(sha256SizeBytes)
    .u32(segmentMagic)
    .u16(segmentVersion)
    .u16(0)
    .u64(header.cluster)
    .u64(header.segmentIndex)
    .u64(header.opFirst);
  const bytes = writer.finish();
  assert(bytes.length === segmentHeaderSizeBytes, 'segment header size');
  bytes.set(sha256(bytes.subarray(sha256SizeBytes)), 0);
  return bytes;
}

export function decodeSegmentHeader(
  bytes: Uint8Array,
): { ok: true; header: SegmentHeader } | { ok: false; problem: SegmentHeaderProblem } {
  if (bytes.length < segmentHeaderSizeBytes) return { ok: false, problem: 'short' };
  const raw = bytes.subarray(0, segmentHeaderSizeBytes);
  if (!checksumEqual(raw.subarray(0, sha256SizeBytes), sha256(raw.subarray(sha256SizeBytes)))) {
    return { ok: false, problem: 'header_checksum' };
  }
  try {
    const reader = new Reader(raw);
    reader.skip(sha256SizeBytes);
    if (reader.u32() !== segmentMagic) return { ok: false, problem: 'magic' };
    if (reader.u16() !== segmentVersion) return { ok: false, problem: 'version' };
    if (reader.u16() !== 0) return { ok: false, problem: 'fields' };
    const cluster = reader.u64();
    const segmentIndex = reader.u64();
    const opFirst = reader.u64();
    if (segmentIndex > segmentIndexMax || opFirst < 1) return { ok: false, problem: 'fields' };
    return { ok: true, header: { cluster, segmentIndex, opFirst } };
  } catch (error) {
    if (error instanceof DecodeError) return { ok: false, problem: 'fields' };
    throw error;
  }
}

export function segmentFileName(segmentIndex: number): string {
  assert(Number.isInteger(segmentIndex), 'segment index must be an integer');
  assert(segmentIndex >= 0 && segmentIndex <= segmentIndexMax, 'segment index out of range');
  return `${String(segmentIndex).padStart(segmentNameDigits, '0')}${segmentFileSuffix}`;
}

const segmentNamePattern = new RegExp(
  `^(\\d{${segmentNameDigits}})${segmentFileSuffix.replace('.', '\\.')}$`,
);

/** The index named by a segment file name, or null when the name is not a segment's. */
export function parseSegmentFileName(name: string): number | null {
  const match = segmentNamePattern.exec(name);
  if (match === null || match[1] === undefined) return null;
  return Number(match[1]);
}
