// Reading journal records back from their segment files (journal.ts read() and entries() use
// these): decoding and verifying one record, reading a run of records in one chunk, and the one
// open handle a sequential read keeps.
//
// Invariants: bytes read from disk never trip an assertion: a record that does not decode, holds
// another op or cluster, has another size than its header says, or fails its body checksum
// throws KMB_ERR_STORAGE_CORRUPT naming the file, position and op. A chunk holds the records of
// one segment only, and at most journalReadChunkSizeBytes of them (one record always fits).

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
