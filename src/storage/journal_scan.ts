// Scanning journal segments: the one place that decides whether bytes on disk are a valid
// record, a torn tail, or corruption. Journal.open (which stops at the first problem and then
// throws) and verify (which keeps going to report everything) both scan through here, so the
// two can never disagree about what is on disk. Nothing here writes.
//
// A record at byte p is valid when its header decodes (header checksum, magic, version), its
// cluster is the expected one, its op is the next op, its parent is the checksum of the
// previous record (op 1: the root prepare of the cluster), its body size is within bounds and
// its body matches the body checksum.
//
// The torn-tail rule (DESIGN §4). Only at the END of the LAST segment, a failing record is a
// torn write — the unfinished write of a crash, never acknowledged because its datasync did not
// complete — when it is one of:
//   header_incomplete  fewer bytes than a header remain before end of file;
//   header_zero        the header is all zeros, and no valid record follows anywhere after it;
//   header_torn        the header fails its checksum, and everything from the first 4096-byte
//                      aligned file position inside the header to end of file is zero (the
//                      write stopped at a page boundary inside the header);
//   body_incomplete    the header is valid and in sequence, but the body runs past end of file;
//   body_torn          the header is valid and in sequence, the body checksum fails, every byte
//                      from some 4096-byte aligned file position to the record's end is zero,
//                      and no valid record follows anywhere after it.
// The last segment's own header may be torn too (fewer than 64 bytes, or all zeros with no
// valid record after): that segment holds nothing durable and is removed.
// Free space. The journal lays zeros down ahead of its writes (journal_writer.ts), so the last segment
// may end in zeros: when every byte from the end of its last valid record to end of file is
// zero, those bytes are free space, not a torn write: nothing is cut and nothing is reported.
// (A write that left nothing but zeros is indistinguishable from one never made, and was never
// acknowledged: its datasync had not returned.) Only the last segment has free space; the
// journal cuts a segment back to its records before starting the next.
// Everything else is corruption and is reported: a bad record followed by a valid one, any bad
// record in a non-final segment, a complete non-zero record with a bad checksum, a chain break,
// a wrong cluster, an op gap, a bad segment header. A torn write can produce zeros and missing
// bytes, never a wrong checksum over complete non-zero data, so nothing else is dropped.

import { assert } from '../core/assert.js';
import { checksumEqual, toHex } from '../core/checksum.js';
import { constants } from '../core/constants.js';
import { bodyMatches, decodeHeader, headerMagic, headerSizeBytes } from '../core/header.js';
import { rootPrepare } from '../core/header.js';
import type { HeaderProblem, PrepareHeader } from '../core/header.js';
import { ChunkCursor, isAllZero, lastNonZeroIndex } from './chunk_cursor.js';
import type { FileHandleLike } from './file_io.js';
import { decodeSegmentHeader, segmentHeaderSizeBytes } from './segment_header.js';
import type { SegmentHeader } from './segment_header.js';

const MiB = 1024 * 1024;
/** Bytes read per syscall when scanning; holds the largest record, so a record is one read. */
export const scanChunkSizeBytes = 8 * MiB;
/** Torn writes stop at page boundaries: zeros from an aligned position mark an unwritten page. */
export const tornAlignmentBytes = 4096;
/** Where the magic sits in a record header (after the 32-byte checksum). */
const headerMagicOffset = 32;

if (scanChunkSizeBytes < headerSizeBytes + constants.prepareBodySizeBytesMax) {
  throw new Error('scanChunkSizeBytes must hold the largest record');
}

export type TornReason =
  | 'segment_header_incomplete'
  | 'segment_header_zero'
  | 'header_incomplete'
  | 'header_zero'
  | 'header_torn'
  | 'body_incomplete'
  | 'body_torn';

export interface ScanProblem {
  readonly position: number;
  readonly op: number | null;
  readonly problem: string;
}

export interface TornTail {
  /** Where the torn write starts: the file is cut back to this size. */
  readonly position: number;
  readonly bytesTruncated: number;
  readonly reason: TornReason;
  readonly op: number | null;
  /** The segment's own header is torn: the whole file holds nothing and is removed. */
  readonly removeSegment: boolean;
}

/** What the next record must be. Mutated by the scan as records are accepted. */
export interface ChainState {
  /** null until known (verify with no superblock adopts the first cluster it sees). */
  cluster: number | null;
  /** null until known; op 1 for a journal's first segment. */
  opNext: number | null;
  /** The checksum of the previous record; null when unknown (after a skipped region). */
  parent: Uint8Array | null;
}

export interface ScannedRecord {
  readonly position: number;
  readonly sizeBytes: number;
  readonly header: PrepareHeader;
  readonly headerBytes: Uint8Array;
  readonly body: Uint8Array;
}

export interface SegmentScanOptions {
  readonly handle: FileHandleLike;
  readonly fileSizeBytes: number;
  readonly segmentIndex: number;
  readonly isLast: boolean;
  readonly chain: ChainState;
  /** false: stop at the first problem (open); true: resynchronise and go on (verify). */
  readonly continueAfterProblem: boolean;
  readonly onRecord: (record: ScannedRecord) => void;
  readonly onProblem: (problem: ScanProblem) => void;
}

export interface SegmentScan {
  header: SegmentHeader | null;
  /** End of the last valid record (the segment header's end when there is none). */
  endPosition: number;
  recordCount: number;
  opFirst: number | null;
  opLast: number | null;
  problemCount: number;
  torn: TornTail | null;
  /** Zero bytes from endPosition to end of file in the last segment (see "Free space"). */
  freeBytes: number;
}

export function newChain(cluster: number | null): ChainState {
  return { cluster, opNext: 1, parent: null };
}

/** The parent the next record must name, when it is known. */
function expectedParent(chain: ChainState): Uint8Array | null {
  if (chain.parent !== null) return chain.parent;
  if (chain.opNext === 1 && chain.cluster !== null)
    return rootPrepare(chain.cluster).header.checksum;
  return null;
}

export function shortHex(checksum: Uint8Array): string {
  return toHex(checksum).slice(0, 16);
}

export async function scanSegment(options: SegmentScanOptions): Promise<SegmentScan> {
  const cursor = new ChunkCursor(options.handle, options.fileSizeBytes, scanChunkSizeBytes);
  const scan: SegmentScan = {
    header: null,
    endPosition: Math.min(segmentHeaderSizeBytes, options.fileSizeBytes),
    recordCount: 0,
    opFirst: null,
    opLast: null,
    problemCount: 0,
    torn: null,
    freeBytes: 0,
  };
  const report = (problem: ScanProblem): void => {
    scan.problemCount += 1;
    options.onProblem(problem);
  };
  const headerOk = await scanSegmentHeader(cursor, options, scan, report);
  if (scan.torn !== null) return scan;
  if (!headerOk && !options.continueAfterProblem) return scan;
  if (cursor.sizeBytes < segmentHeaderSizeBytes) return scan;
  await scanRecords(cursor, options, scan, report);
  return scan;
}

async function scanSegmentHeader(
  cursor: ChunkCursor,
  options: SegmentScanOptions,
  scan: SegmentScan,
  report: (problem: ScanProblem) => void,
): Promise<boolean> {
  const sizeBytes = cursor.sizeBytes;
  if (sizeBytes < segmentHeaderSizeBytes) {
    if (options.isLast) {
      scan.torn = tornSegment('segment_header_incomplete', sizeBytes);
      return false;
    }
    const problem = `segment file is ${sizeBytes} bytes, shorter than its segment header`;
    report({ position: 0, op: null, problem });
    return false;
  }
  const bytes = await cursor.bytes(0, segmentHeaderSizeBytes);
  const decoded = decodeSegmentHeader(bytes);
  if (!decoded.ok) {
    const zero = isAllZero(bytes);
    if (zero && options.isLast && (await findValidRecord(cursor, 1)) === null) {
      scan.torn = tornSegment('segment_header_zero', sizeBytes);
      return false;
    }
    const what = zero ? 'is all zeros' : `is invalid (${decoded.problem})`;
    report({ position: 0, op: null, problem: `segment header ${what}` });
    return false;
  }
  scan.header = decoded.header;
  return checkSegmentHeader(decoded.header, options, report);
}

function tornSegment(reason: TornReason, sizeBytes: number): TornTail {
  return { position: 0, bytesTruncated: sizeBytes, reason, op: null, removeSegment: true };
}

/** Checks a decoded segment header against its file name and the chain; adopts what is unknown. */
function checkSegmentHeader(
  header: SegmentHeader,
  options: SegmentScanOptions,
  report: (problem: ScanProblem) => void,
): boolean {
  const chain = options.chain;
  const problems: string[] = [];
  if (header.segmentIndex !== options.segmentIndex) {
    problems.push(
      `segment header says index ${header.segmentIndex}, the file name says ` +
        `${options.segmentIndex}`,
    );
  }
  if (chain.cluster === null) chain.cluster = header.cluster;
  if (header.cluster !== chain.cluster) {
    problems.push(`segment header names cluster ${header.cluster}, expected ${chain.cluster}`);
  }
  if (chain.opNext !== null && header.opFirst !== chain.opNext) {
    problems.push(
      `segment header says its first op is ${header.opFirst}, but op ` +
        `${chain.opNext} is next (ops must be contiguous across segments)`,
    );
    chain.parent = null;
  }
  if (chain.opNext === null || header.opFirst !== chain.opNext) chain.opNext = header.opFirst;
  for (const problem of problems) report({ position: 0, op: header.opFirst, problem });
  return problems.length === 0;
}

async function scanRecords(
  cursor: ChunkCursor,
  options: SegmentScanOptions,
  scan: SegmentScan,
  report: (problem: ScanProblem) => void,
): Promise<void> {
  const chain = options.chain;
  let position = segmentHeaderSizeBytes;
  while (position < cursor.sizeBytes) {
    let inspection = inspectRecord(cursor, position, chain);
    if (inspection === null) {
      // Only at a chunk boundary: the chunk holds the largest record, so one load suffices.
      await cursor.load(position, scanChunkSizeBytes);
      inspection = inspectRecord(cursor, position, chain);
      assert(inspection !== null, 'a loaded chunk holds a whole record');
    }
    if (inspection.kind === 'record') {
      acceptRecord(inspection.record, options, scan);
      position = inspection.end;
      continue;
    }
    const reason = inspection.torn;
    if (options.isLast && reason !== null && (await cursor.isZero(position, cursor.sizeBytes))) {
      scan.freeBytes = cursor.sizeBytes - position;
      return;
    }
    if (options.isLast && reason !== null && (await isTornTail(cursor, position, inspection))) {
      const bytesTruncated = cursor.sizeBytes - position;
      scan.torn = { position, bytesTruncated, reason, op: inspection.op, removeSegment: false };
      return;
    }
    report({ position, op: inspection.op, problem: inspection.problem });
    if (!options.continueAfterProblem) return;
    const next = await resumePosition(cursor, position, inspection, chain, report);
    if (next === null) return;
    position = next;
  }
}

function acceptRecord(record: ScannedRecord, options: SegmentScanOptions, scan: SegmentScan): void {
  const chain = options.chain;
  const op = record.header.op;
  if (chain.cluster === null) chain.cluster = record.header.cluster;
  chain.opNext = op + 1;
  chain.parent = record.header.checksum;
  scan.recordCount += 1;
  scan.opFirst ??= op;
  scan.opLast = op;
  scan.endPosition = record.position + record.sizeBytes;
  options.onRecord(record);
}

/** After a bad record (verify only): where to go on, and what the chain expects there. */
async function resumePosition(
  cursor: ChunkCursor,
  position: number,
  inspection: BadRecord,
  chain: ChainState,
  report: (problem: ScanProblem) => void,
): Promise<number | null> {
  if (inspection.header !== null && inspection.end !== null) {
    // The header is sound, so the record's length is known and the chain goes on through it.
    chain.opNext = inspection.header.op + 1;
    chain.parent = inspection.header.checksum;
    return inspection.end;
  }
  // The length is unknown: resume at the next valid record. The problem already named the op
  // expected here; report again only if the record found is not the one right after it.
  const next = await findValidRecord(cursor, position + 1);
  if (next === null) return null;
  const found = decodeHeader(await cursor.bytes(next, headerSizeBytes));
  assert(found.ok, 'findValidRecord returns a valid record');
  const expectedOp = chain.opNext;
  if (expectedOp !== null && found.header.op !== expectedOp + 1) {
    report({
      position: next,
      op: found.header.op,
      problem:
        `bytes ${position}..${next} are unreadable; scanning resumed at op ` +
        `${found.header.op} (op ${expectedOp} was expected at byte ${position})`,
    });
  }
  chain.opNext = found.header.op;
  chain.parent = null;
  return next;
}

interface BadRecord {
  readonly kind: 'bad';
  readonly problem: string;
  /** The record's op; for an unreadable header, the op expected at this position (if known). */
  readonly op: number | null;
  /** The decoded header when its checksum held. */
  readonly header: PrepareHeader | null;
  /** The record's end when its header held and it lies within the file. */
  readonly end: number | null;
  /** The torn-write shape this failure has, if any (decided by isTornTail). */
  readonly torn: TornReason | null;
}

type Inspection = { kind: 'record'; record: ScannedRecord; end: number } | BadRecord;

function bad(
  problem: string,
  header: PrepareHeader,
  end: number | null,
  torn: TornReason | null,
): BadRecord {
  return { kind: 'bad', problem, op: header.op, header, end, torn };
}

function unreadable(problem: string, chain: ChainState, torn: TornReason): BadRecord {
  return { kind: 'bad', problem, op: chain.opNext, header: null, end: null, torn };
}

const headerProblemText: Record<HeaderProblem, string> = {
  short: 'too short',
  magic: 'wrong magic',
  version: 'unknown format version',
  command: 'not a prepare',
  header_checksum: 'header checksum mismatch',
  fields: 'malformed fields',
};

/**
 * Judges the record at `position` from the cursor's current chunk, synchronously (this is the
 * per-record hot path of every scan); null when the chunk does not hold the bytes needed yet.
 */
function inspectRecord(
  cursor: ChunkCursor,
  position: number,
  chain: ChainState,
): Inspection | null {
  const availableBytes = cursor.sizeBytes - position;
  if (availableBytes < headerSizeBytes) {
    const problem = `${availableBytes} stray bytes at the end of the segment, too few for a record`;
    return unreadable(problem, chain, 'header_incomplete');
  }
  const headerBytes = cursor.peek(position, headerSizeBytes);
  if (headerBytes === null) return null;
  const decoded = decodeHeader(headerBytes);
  if (!decoded.ok) {
    if (isAllZero(headerBytes)) {
      return unreadable('record header is all zeros', chain, 'header_zero');
    }
    const problem = `record header is invalid: ${headerProblemText[decoded.problem]}`;
    return unreadable(problem, chain, 'header_torn');
  }
  const header = decoded.header;
  const sizeBytes = headerSizeBytes + header.bodySizeBytes;
  const end = position + sizeBytes;
  const endInFile = end <= cursor.sizeBytes ? end : null;
  const mismatch = chainMismatch(header, chain);
  if (mismatch !== null) return bad(mismatch, header, endInFile, null);
  if (endInFile === null) {
    const problem =
      `record body runs past the end of the segment (record needs ${sizeBytes} ` +
      `bytes, ${availableBytes} remain)`;
    return bad(problem, header, null, 'body_incomplete');
  }
  const recordBytes = cursor.peek(position, sizeBytes);
  if (recordBytes === null) return null;
  const body = recordBytes.subarray(headerSizeBytes);
  if (!bodyMatches(header, body)) {
    return bad('record body does not match its body checksum', header, end, 'body_torn');
  }
  const headerView = recordBytes.subarray(0, headerSizeBytes);
  const record = { position, sizeBytes, header, headerBytes: headerView, body };
  return { kind: 'record', record, end };
}

/** Why a header with a sound checksum is not the record that must come next, or null. */
function chainMismatch(header: PrepareHeader, chain: ChainState): string | null {
  if (chain.cluster !== null && header.cluster !== chain.cluster) {
    return `record belongs to cluster ${header.cluster}, expected cluster ${chain.cluster}`;
  }
  if (header.bodySizeBytes > constants.prepareBodySizeBytesMax) {
    return (
      `record body size ${header.bodySizeBytes} exceeds the maximum ` +
      `${constants.prepareBodySizeBytesMax}`
    );
  }
  if (chain.opNext !== null && header.op !== chain.opNext) {
    return (
      `record has op ${header.op} where op ${chain.opNext} must come next ` +
      `(ops must be contiguous)`
    );
  }
  const parent = expectedParent(chain);
  if (parent !== null && !checksumEqual(header.parent, parent)) {
    return (
      `hash chain broken: record names parent ${shortHex(header.parent)}…, but the ` +
      `checksum of op ${header.op - 1} is ${shortHex(parent)}…`
    );
  }
  return null;
}

function alignUp(position: number): number {
  return Math.ceil(position / tornAlignmentBytes) * tornAlignmentBytes;
}

/** Applies the torn-tail rule (top of this file) to a failing record in the last segment. */
async function isTornTail(
  cursor: ChunkCursor,
  position: number,
  inspection: BadRecord,
): Promise<boolean> {
  switch (inspection.torn) {
    case null:
      return false;
    case 'header_incomplete':
    case 'body_incomplete':
      return true;
    case 'header_zero':
      return (await findValidRecord(cursor, position + 1)) === null;
    case 'header_torn': {
      const aligned = alignUp(position + 1);
      if (aligned >= position + headerSizeBytes) return false;
      return await cursor.isZero(aligned, cursor.sizeBytes);
    }
    case 'body_torn': {
      const end = inspection.end;
      if (end === null) return false;
      const recordBytes = await cursor.bytes(position, end - position);
      const aligned = alignUp(position + lastNonZeroIndex(recordBytes) + 1);
      return aligned < end && (await findValidRecord(cursor, end)) === null;
    }
    case 'segment_header_incomplete':
    case 'segment_header_zero':
      return false;
  }
}

const headerMagicBytes = (() => {
  const bytes = Buffer.alloc(4);
  bytes.writeUInt32LE(headerMagic, 0);
  return bytes;
})();

/**
 * The position of the first complete, self-consistent record (header checksum and body checksum
 * hold) starting at or after `from`, or null. Used to tell "garbage to the end" from "a bad
 * record followed by a valid one", and by verify to resynchronise after a bad header.
 */
export async function findValidRecord(cursor: ChunkCursor, from: number): Promise<number | null> {
  let windowStart = from;
  while (windowStart + headerSizeBytes <= cursor.sizeBytes) {
    const window = await cursor.bytes(windowStart, scanChunkSizeBytes);
    const found = await searchWindow(cursor, window, windowStart);
    if (found !== null) return found;
    if (windowStart + window.length >= cursor.sizeBytes) return null;
    // Overlap windows so that a header straddling the boundary is seen whole in the next one.
    windowStart += window.length - headerSizeBytes + 1;
  }
  return null;
}

async function searchWindow(
  cursor: ChunkCursor,
  window: Uint8Array,
  windowStart: number,
): Promise<number | null> {
  const buffer = Buffer.from(window.buffer, window.byteOffset, window.length);
  let index = buffer.indexOf(headerMagicBytes, headerMagicOffset);
  while (index !== -1) {
    const start = index - headerMagicOffset;
    if (start + headerSizeBytes > window.length) return null;
    const decoded = decodeHeader(window.subarray(start, start + headerSizeBytes));
    if (decoded.ok) {
      const position = windowStart + start;
      const sizeBytes = headerSizeBytes + decoded.header.bodySizeBytes;
      const fits =
        decoded.header.bodySizeBytes <= constants.prepareBodySizeBytesMax &&
        position + sizeBytes <= cursor.sizeBytes;
      if (fits) {
        const recordBytes = await cursor.bytes(position, sizeBytes);
        if (bodyMatches(decoded.header, recordBytes.subarray(headerSizeBytes))) return position;
      }
    }
    index = buffer.indexOf(headerMagicBytes, index + 1);
  }
  return null;
}
