// Reading journal records back from their segment files (journal.ts read(), readMany() and
// entries() use these): decoding and verifying one record, reading a run of records in one chunk,
// planning the batched reads of scattered ops, and the one open handle a sequential read keeps.
//
// Batched reads (readMany): a stream's events lie in ops spread through the journal, among other
// streams' records. Reading each op on its own costs a trip through the thread pool and a buffer
// per record; instead the wanted ops of one segment that lie close together are read in one go,
// reading through the records between them when the gap is small, and each wanted record is then
// verified on its own exactly as read() verifies one.
//
// Invariants: bytes read from disk never trip an assertion: a record that does not decode, holds
// another op or cluster, has another size than its header says, or fails its body checksum
// throws KMB_ERR_STORAGE_CORRUPT naming the file, position and op. A chunk holds the records of
// one segment only, and at most journalReadChunkSizeBytes of them (one record always fits). A
// batched run lies in one segment, spans at most journalBatchReadSizeBytesMax (or one record, if
// that is larger), and skips at most journalBatchReadGapBytesMax between two wanted records.

import { assert } from '../core/assert.js';
import { constants } from '../core/constants.js';
import type { KmbError } from '../core/errors.js';
import { bodyMatches, decodeHeader, headerSizeBytes } from '../core/header.js';
import type { Prepare } from '../core/header.js';
import { readAll } from './file_io.js';
import type { FileHandleLike, FileIO } from './file_io.js';
import type { OpIndex } from './op_index.js';
import { segmentPath } from './segment_file.js';
import { corruptionError, withIoErrors } from './storage_errors.js';

/** Bytes read per syscall by entries(); holds the largest record. */
export const journalReadChunkSizeBytes = 8 * 1024 * 1024;

assert(journalReadChunkSizeBytes >= headerSizeBytes + constants.prepareBodySizeBytesMax);

/** Bytes one run of a batched read spans at most (unless one record is larger on its own). */
export const journalBatchReadSizeBytesMax = 1024 * 1024;
/** Bytes of records not asked for that a batched read reads through instead of a new read. */
export const journalBatchReadGapBytesMax = 64 * 1024;

/** Which journal records belong to, for verifying them and naming them in errors. */
export interface RecordOwner {
  /** The data directory, named in the corruption error's advice. */
  readonly dataDir: string;
  readonly cluster: number;
}

/**
 * Verifies one record read back from disk (op `op`, at `position` of file `path`); bytes from
 * disk never trip an assertion.
 */
export function decodeRecord(
  owner: RecordOwner,
  bytes: Uint8Array,
  op: number,
  path: string,
  position: number,
): Prepare {
  const decoded = decodeHeader(bytes);
  if (!decoded.ok) {
    throw corrupt(owner, path, position, op, `record header is invalid (${decoded.problem})`);
  }
  const header = decoded.header;
  let problem: string | null = null;
  if (header.op !== op) problem = `record holds op ${header.op}`;
  else if (header.cluster !== owner.cluster) problem = `record is of cluster ${header.cluster}`;
  else if (headerSizeBytes + header.bodySizeBytes !== bytes.length) {
    problem = `record is ${bytes.length} bytes on disk, its header says ${header.bodySizeBytes}`;
  }
  if (problem !== null) throw corrupt(owner, path, position, op, problem);
  const body = bytes.subarray(headerSizeBytes);
  if (!bodyMatches(header, body)) {
    throw corrupt(owner, path, position, op, 'record body does not match its body checksum');
  }
  return { header, headerBytes: bytes.subarray(0, headerSizeBytes), body };
}

function corrupt(
  owner: RecordOwner,
  file: string,
  position: number,
  op: number,
  problem: string,
): KmbError {
  return corruptionError(owner.dataDir, { file, position, op, problem });
}

/** One chunk read by entries(): the records of ops up to opLast, from file position start. */
export interface ReadRun {
  readonly path: string;
  readonly chunk: Uint8Array;
  readonly start: number;
  /** Bytes actually read (fewer than the chunk only if the file is shorter than the index). */
  readonly readBytes: number;
  readonly opLast: number;
}

/** Reads the records from `op` up to `lastOp` that lie in one segment and fit in one chunk. */
export async function readRun(
  index: OpIndex,
  readers: SegmentReaders,
  op: number,
  lastOp: number,
): Promise<ReadRun> {
  const segment = index.segment(op);
  const opLast = index.runOpLast(
    op,
    Math.min(lastOp, index.segmentOpLast(segment)),
    journalReadChunkSizeBytes,
  );
  const start = index.position(op);
  const path = segmentPath(readers.journalDir, segment);
  const chunk = new Uint8Array(index.position(opLast) + index.sizeBytes(opLast) - start);
  const readBytes = await withIoErrors(`reading ${path}`, async () =>
    readAll(await readers.handle(segment), chunk, start),
  );
  return { path, chunk, start, readBytes, opLast };
}

/** Decodes the record of `op` out of its run's chunk (a view into it, not a copy). */
export function decodeFromRun(
  owner: RecordOwner,
  index: OpIndex,
  run: ReadRun,
  op: number,
): Prepare {
  const position = index.position(op);
  const from = position - run.start;
  const to = Math.min(from + index.sizeBytes(op), run.readBytes);
  return decodeRecord(owner, run.chunk.subarray(from, Math.max(from, to)), op, run.path, position);
}

/** One open read handle at a time, for sequential reads across segments. */
export class SegmentReaders {
  private current: { segment: number; handle: FileHandleLike } | null = null;

  constructor(
    private readonly io: FileIO,
    readonly journalDir: string,
  ) {}

  async handle(segment: number): Promise<FileHandleLike> {
    if (this.current !== null && this.current.segment === segment) return this.current.handle;
    await this.close();
    const handle = await this.io.open(segmentPath(this.journalDir, segment), 'read');
    this.current = { segment, handle };
    return handle;
  }

  async close(): Promise<void> {
    const current = this.current;
    this.current = null;
    if (current !== null) await current.handle.close();
  }
}

/** A run of a batched read: ops[first..last) of the caller's list, from one segment. */
export interface BatchRun {
  readonly segment: number;
  /** The file positions [start, end) read: the first wanted record's start to the last's end. */
  readonly start: number;
  readonly end: number;
  readonly first: number;
  readonly last: number;
}

/**
 * Groups ops[0..count) (strictly ascending, all in the index) into runs to read in one go each:
 * a run grows while the next op is in the same segment, the gap before it is at most
 * journalBatchReadGapBytesMax, and the run still spans at most journalBatchReadSizeBytesMax.
 */
export function planBatchRuns(index: OpIndex, ops: readonly number[], count: number): BatchRun[] {
  assert(count >= 0 && count <= ops.length, 'plan within the list');
  const runs: BatchRun[] = [];
  let first = 0;
  while (first < count) {
    const segment = index.segment(ops[first]!);
    const segmentOpLast = index.segmentOpLast(segment);
    const start = index.position(ops[first]!);
    let end = start + index.sizeBytes(ops[first]!);
    let last = first + 1;
    for (; last < count; last++) {
      const op = ops[last]!;
      assert(op > ops[last - 1]!, 'a batched read lists ops in ascending order');
      if (op > segmentOpLast) break;
      const position = index.position(op);
      const recordEnd = position + index.sizeBytes(op);
      if (position - end > journalBatchReadGapBytesMax) break;
      if (recordEnd - start > journalBatchReadSizeBytesMax) break;
      end = recordEnd;
    }
    runs.push({ segment, start, end, first, last });
    first = last;
  }
  return runs;
}

/** Reads the bytes of one run through `handle`: the buffer and how much of it the file held. */
export async function readBatchRun(
  handle: FileHandleLike,
  run: BatchRun,
): Promise<{ chunk: Uint8Array; readBytes: number }> {
  const chunk = new Uint8Array(run.end - run.start);
  return { chunk, readBytes: await readAll(handle, chunk, run.start) };
}

/**
 * Verifies each wanted record of a run read from `path` and visits it: visit(prepare, i) for
 * ops[i], i in [first, last), in order (a view into the run's buffer, not a copy).
 */
export function visitBatchRun(
  owner: RecordOwner,
  index: OpIndex,
  path: string,
  run: BatchRun,
  read: { readonly chunk: Uint8Array; readonly readBytes: number },
  ops: readonly number[],
  visit: (prepare: Prepare, index: number) => void,
): void {
  for (let i = run.first; i < run.last; i++) {
    const op = ops[i]!;
    const position = index.position(op);
    const from = position - run.start;
    const to = Math.min(from + index.sizeBytes(op), read.readBytes);
    const bytes = read.chunk.subarray(from, Math.max(from, to));
    visit(decodeRecord(owner, bytes, op, path, position), i);
  }
}
