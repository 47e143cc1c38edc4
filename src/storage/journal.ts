// The journal: the durable, append-only, hash-chained log of prepares (DESIGN §4), kept in
// segment files under <dataDir>/journal/. A record is exactly a Prepare: its 160-byte header
// followed by its body. Each segment starts with a 64-byte segment header (segment_header.ts).
//
// Opening scans every segment (journal_recover.ts, journal_scan.ts): every segment header, and
// every record's header checksum, body checksum, cluster, op sequence and parent checksum.
//
// Torn tail vs corruption. A failing record is a torn write — the unfinished last write of a
// crash, which was never acknowledged because its datasync never completed — only at the END of
// the LAST segment, and only in one of these shapes (journal_scan.ts has the exact rule):
//   - an incomplete record: its header or its body runs past end of file;
//   - an all-zero header region, with no valid record anywhere after it;
//   - a valid, in-sequence header whose body checksum fails, where every byte from some
//     4096-byte-aligned file position to the record's end is zero (a page that never reached
//     the disk), with no valid record after it;
//   - a header failing its checksum with zeros from a 4096-aligned position inside it to EOF;
//   - a last segment whose own 64-byte header is incomplete or all zeros (the file is removed).
// A torn tail is cut off at open (truncate + datasync) and reported in `recovery.truncated`.
// Anything else is corruption: a bad record followed by a valid one, a bad record in a
// non-final segment, a complete non-zero record with a bad checksum (even the last one), a
// chain break, a wrong cluster id, an op gap, a missing or misnamed segment. Open then throws
// KMB_ERR_STORAGE_CORRUPT naming the segment file, byte position, op and problem, changes
// nothing, and tells the operator to run `kimberlite-admin verify --data-dir <dir>`. Nothing
// that is not provably a torn tail is ever dropped.
//
// This file is the facade: open, append, read, readMany, entries, truncate and close. append()
// decides where each record goes: to a new segment when the current one holds at least one record
// and would otherwise exceed `segmentSizeBytesMax` (so a record larger than that sits alone in its
// segment). journal_writer.ts writes it: group commit, free space laid down ahead of the
// records, rolling to the new segment, waiting for space on a full disk (its opening comment
// has those rules and their invariants). journal_read.ts reads records back and verifies them.
//
// Invariants:
// - opMax and headChecksum move synchronously in append(); durableOpMax only after the datasync
//   covering the record returned (journal_writer.ts). An append's promise never resolves before
//   that datasync.
// - ops 1..opMax are contiguous and each record's parent is the checksum of the one before
//   (op 1: the root prepare of the cluster); append asserts it, open verifies it.
// - After a failed write or sync, every append is refused (journal_writer.ts says which error),
//   and so is a read of an op that was not durable yet.
// - Committed records are never rewritten. Records are cut off only (1) as a torn tail at open,
//   and (2) by truncate(opMax, {commitFloor}): a view change discarding uncommitted ops that the
//   cluster's new log does not hold. truncate refuses (asserts) to cut at or below the commit
//   floor the caller passes, waits for appends in flight, is durable when it resolves (file
//   truncated and datasynced, removed segments unlinked and the directory fsynced), and no
//   append may be made until it resolves.

import { AssertionError, assert } from '../core/assert.js';
import { checksumEqual, sha256SizeBytes } from '../core/checksum.js';
import { constants } from '../core/constants.js';
import { headerSizeBytes, rootPrepare } from '../core/header.js';
import type { Prepare } from '../core/header.js';
import { asOp } from '../core/types.js';
import type { Op } from '../core/types.js';
import { readAll, realFileIO } from './file_io.js';
import { SegmentReadCache } from './segment_read_cache.js';
import type { FileIO } from './file_io.js';
import {
  SegmentReaders,
  decodeFromRun,
  decodeRecord,
  planBatchRuns,
  readBatchRun,
  readRun,
  visitBatchRun,
} from './journal_read.js';
import type { RecordOwner } from './journal_read.js';
import { recoverJournal } from './journal_recover.js';
import type { RecoveredJournal, TruncatedTail } from './journal_recover.js';
import { JournalWriter, journalAppendQueueCountMax } from './journal_writer.js';
import type { JournalCounters, JournalWriterOptions } from './journal_writer.js';
import { OpIndex } from './op_index.js';
import { journalDirOf, segmentPath } from './segment_file.js';
import { segmentHeaderSizeBytes, segmentIndexMax } from './segment_header.js';
import { ioError, withIoErrors } from './storage_errors.js';

export type { TruncatedTail } from './journal_recover.js';
export type { JournalCounters } from './journal_writer.js';
export {
  freeSpaceChunkBytes,
  freeSpaceLowWaterBytes,
  journalAppendQueueCountMax,
  journalWriteBatchCountMax,
  journalWriteBatchSizeBytesMax,
} from './journal_writer.js';
export {
  journalBatchReadGapBytesMax,
  journalBatchReadSizeBytesMax,
  journalReadChunkSizeBytes,
} from './journal_read.js';

export interface JournalOptions {
  /** The data directory; the journal lives in its `journal/` subdirectory. */
  readonly dir: string;
  readonly cluster: number;
  readonly io?: FileIO | undefined;
  /** Defaults to constants.journalSegmentSizeBytesMax; tests use tiny segments. */
  readonly segmentSizeBytesMax?: number | undefined;
  /** Lay zeros down ahead of the records (default true; journal_writer.ts, "Free space"). */
  readonly freeSpace?: boolean | undefined;
  /** Told once if laying zeros down fails (it then stops; records extend the file instead). */
  readonly onFreeSpaceError?: ((error: unknown) => void) | undefined;
  /** Corruption before the tail: refuse to open (default), or cut there (see journal_recover). */
  readonly onCorruption?: 'refuse' | 'cut' | undefined;
  /** The superblock's commit: a journal ending below it lost records (journal_recover.ts). */
  readonly commitFloor?: number | undefined;
  /** Told when writes stop for a full disk (true, with the error) and when they resume. */
  readonly onFull?: ((full: boolean, error: unknown) => void) | undefined;
  /** How often a write stopped by a full disk is retried (default: diskFullRetryIntervalMs). */
  readonly fullRetryIntervalMs?: number | undefined;
}

export interface RecoveryReport {
  readonly opMax: Op;
  readonly recordCount: number;
  readonly segmentCount: number;
  readonly sizeBytes: number;
  /** The torn tail cut off at open, or null when the journal ended cleanly. */
  readonly truncated: TruncatedTail | null;
}

/** What the journal passes through to its writer as it is (see JournalWriterOptions). */
type WriterSettings = Pick<JournalWriterOptions, 'freeSpace' | 'onFreeSpaceError' | 'spaceWait'>;

export class Journal {
  readonly counters: JournalCounters = {
    appends: 0,
    writes: 0,
    syncs: 0,
    bytesWritten: 0,
    freeSpaceBytesWritten: 0,
  };
  private opMaxValue: number;
  private headChecksumValue: Uint8Array;
  /** Where the next appended record goes (decided at append time, written later). */
  private placement: { segment: number; sizeBytes: number; recordCount: number };
  /** The tail segment, the queue of appends and everything written (journal_writer.ts). */
  private readonly writer: JournalWriter;
  private truncating = false;
  /** The read handle random reads share (segment_read_cache.ts). */
  private readonly readCache: SegmentReadCache;
  /** Whose records these are, for verifying what is read back (journal_read.ts). */
  private readonly owner: RecordOwner;
  private closed: Promise<void> | null = null;

  private constructor(
    dataDir: string,
    private readonly journalDir: string,
    private readonly cluster: number,
    private readonly io: FileIO,
    private readonly segmentSizeBytesMax: number,
    private readonly index: OpIndex,
    state: RecoveredJournal,
    readonly recovery: RecoveryReport,
    writerSettings: WriterSettings,
  ) {
    this.readCache = new SegmentReadCache(io);
    this.owner = { dataDir, cluster };
    this.opMaxValue = index.opMax;
    this.headChecksumValue = state.headChecksum;
    const tailSegment = index.segmentCount - 1;
    assert(state.segmentSizesBytes.length === index.segmentCount, 'a size for every segment');
    const tailSizeBytes = state.segmentSizesBytes[tailSegment] ?? 0;
    const tailRecordCount = index.opMax - index.segmentOpFirst(tailSegment) + 1;
    this.placement = {
      segment: tailSegment,
      sizeBytes: tailSizeBytes,
      recordCount: tailRecordCount,
    };
    this.writer = new JournalWriter({
      ...writerSettings,
      io,
      journalDir,
      cluster,
      segmentSizeBytesMax,
      counters: this.counters,
      tailSegment,
      tailHandle: state.tailHandle,
      tailSizeBytes,
      tailFileSizeBytes: state.tailFileSizeBytes,
      closedSegmentsSizeBytes: recovery.sizeBytes - tailSizeBytes,
      durableOpMax: index.opMax,
    });
  }

  /** Opens (creating if needed) the journal of `dir`, verifying everything on disk. */
  static async open(options: JournalOptions): Promise<Journal> {
    const io = options.io ?? realFileIO;
    const segmentSizeBytesMax = options.segmentSizeBytesMax ?? constants.journalSegmentSizeBytesMax;
    assert(Number.isSafeInteger(options.cluster) && options.cluster >= 0, 'cluster id');
    assert(Number.isSafeInteger(segmentSizeBytesMax), 'segment size must be an integer');
    assert(segmentSizeBytesMax >= segmentHeaderSizeBytes + headerSizeBytes, 'segment too small');
    const journalDir = journalDirOf(options.dir);
    const context = {
      io,
      dataDir: options.dir,
      journalDir,
      cluster: options.cluster,
      onCorruption: options.onCorruption ?? 'refuse',
      commitFloor: options.commitFloor ?? 0,
    };
    const recovered = await withIoErrors(`opening the journal in ${journalDir}`, () =>
      recoverJournal(context),
    );
    const sizeBytes = recovered.segmentSizesBytes.reduce((sum, size) => sum + size, 0);
    const recovery: RecoveryReport = {
      opMax: asOp(recovered.index.opMax),
      recordCount: recovered.index.opMax,
      segmentCount: recovered.index.segmentCount,
      sizeBytes,
      truncated: recovered.truncated,
    };
    const journal = new Journal(
      options.dir,
      journalDir,
      options.cluster,
      io,
      segmentSizeBytesMax,
      recovered.index,
      recovered,
      recovery,
      {
        freeSpace: options.freeSpace ?? true,
        onFreeSpaceError: options.onFreeSpaceError ?? (() => undefined),
        spaceWait: {
          onFull: options.onFull ?? (() => undefined),
          retryIntervalMs: () => options.fullRetryIntervalMs ?? constants.diskFullRetryIntervalMs,
        },
      },
    );
    journal.counters.syncs += recovered.syncCount;
    journal.counters.bytesWritten += recovered.bytesWritten;
    return journal;
  }

  /** The highest op appended (durable or not). */
  get opMax(): Op {
    return asOp(this.opMaxValue);
  }

  /** The highest op whose datasync has completed. */
  get durableOpMax(): Op {
    return asOp(this.writer.durableOpMax);
  }

  /** The checksum of the prepare at opMax (the root prepare's when the journal is empty). */
  get headChecksum(): Uint8Array {
    return this.headChecksumValue;
  }

  /** Bytes in all segment files (written, not necessarily synced). */
  get sizeBytes(): number {
    return this.writer.sizeBytes;
  }

  /** Zero bytes laid down (and durable) after the last record written, in the last segment. */
  get freeSpaceBytes(): number {
    return this.writer.freeSpaceBytes;
  }

  /** Segment files on disk. */
  get segmentCount(): number {
    return this.writer.segmentCount;
  }

  /** Appends not yet durable. */
  get pendingCount(): number {
    return this.opMaxValue - this.writer.durableOpMax;
  }

  /** True after a write or sync failed; the journal then refuses appends. */
  get failed(): boolean {
    return this.writer.failed;
  }

  /** True while writes wait for space on a full disk (appends queue, nothing resolves). */
  get full(): boolean {
    return this.writer.full;
  }

  /**
   * Appends the next prepare. opMax and headChecksum advance at once, so the caller may append
   * the next prepare immediately; the promise resolves once the record is written and
   * datasynced, and rejects with KMB_ERR_STORAGE_IO if the write or sync failed.
   */
  append(prepare: Prepare): Promise<void> {
    assert(!this.writer.closing, 'append after close');
    assert(!this.truncating, 'append while a truncation runs: await truncate() first');
    if (this.writer.failed) return Promise.reject(this.writer.refusal());
    this.checkAppend(prepare);
    assert(this.writer.queuedCount < journalAppendQueueCountMax, 'journal append queue is full');
    const op = prepare.header.op;
    const place = this.place(op, headerSizeBytes + prepare.body.length);
    this.opMaxValue = op;
    this.headChecksumValue = prepare.header.checksum;
    this.counters.appends += 1;
    return this.writer.enqueue(prepare, place);
  }

  private checkAppend(prepare: Prepare): void {
    const header = prepare.header;
    assert(header.cluster === this.cluster, 'prepare belongs to another cluster');
    assert(header.op === this.opMaxValue + 1, `append op ${header.op}, expected ${this.opMax + 1}`);
    assert(checksumEqual(header.parent, this.headChecksumValue), 'parent must be the head');
    assert(prepare.headerBytes.length === headerSizeBytes, 'header bytes size');
    assert(checksumEqual(prepare.headerBytes.subarray(0, sha256SizeBytes), header.checksum));
    assert(prepare.body.length === header.bodySizeBytes, 'body size matches the header');
    assert(header.bodySizeBytes <= constants.prepareBodySizeBytesMax, 'body size bound');
  }

  /** Decides the segment and position of the next record, rolling to a new segment if full. */
  private place(op: number, sizeBytes: number): { segment: number; position: number } {
    const full = this.placement.sizeBytes + sizeBytes > this.segmentSizeBytesMax;
    if (this.placement.recordCount > 0 && full) {
      assert(this.placement.segment < segmentIndexMax, 'segment index space exhausted');
      const segment = this.placement.segment + 1;
      this.placement = { segment, sizeBytes: segmentHeaderSizeBytes, recordCount: 0 };
      this.index.addSegment(op);
    }
    const position = this.placement.sizeBytes;
    this.placement.sizeBytes += sizeBytes;
    this.placement.recordCount += 1;
    this.index.push(position, sizeBytes);
    return { segment: this.placement.segment, position };
  }

  /**
   * Discards every record after `opMax`: uncommitted ops that a view change replaced. Never at
   * or below `commitFloor` (the caller's commit number: committed records are the audit record
   * and are never cut). Waits for appends in flight; resolves once the cut is durable. Appends
   * must wait for it to resolve.
   */
  async truncate(opMax: number, options: { commitFloor: number }): Promise<void> {
    assert(!this.writer.closing && !this.truncating, 'one truncation at a time, before close');
    assert(Number.isInteger(opMax) && opMax >= 0, 'truncate to a non-negative op');
    assert(
      opMax >= options.commitFloor,
      `truncate to ${opMax} below commit ${options.commitFloor}`,
    );
    assert(opMax <= this.opMaxValue, `truncate to ${opMax} beyond the head ${this.opMaxValue}`);
    this.truncating = true;
    this.readCache.invalidate(); // Segment files are about to be cut, removed or recreated.
    try {
      while (this.writer.flushing !== null) await this.writer.flushing;
      if (this.writer.layingFreeSpace !== null) await this.writer.layingFreeSpace;
      if (this.writer.failed) throw this.writer.refusal();
      if (opMax === this.opMaxValue) return;
      const headChecksum =
        opMax === 0
          ? rootPrepare(this.cluster).header.checksum
          : (await this.read(opMax)).header.checksum;
      await this.cutAfter(opMax).catch((error: unknown) => {
        if (error instanceof AssertionError) throw error;
        throw this.writer.failWith(
          ioError(`truncating the journal in ${this.journalDir} to op ${opMax}`, error),
        );
      });
      this.opMaxValue = opMax;
      this.headChecksumValue = headChecksum;
      this.writer.forgetAfter(opMax);
    } finally {
      this.truncating = false;
    }
  }

  /** Removes the segments after the one holding op opMax + 1 and cuts that one at its record. */
  private async cutAfter(opMax: number): Promise<void> {
    const index = this.index;
    const segment = index.segment(opMax + 1);
    const position = index.position(opMax + 1);
    await this.writer.cutTo(segment, position, (closed) => this.segmentEnd(closed));
    index.truncate(opMax, segment + 1);
    const recordCount = opMax - index.segmentOpFirst(segment) + 1;
    this.placement = { segment, sizeBytes: position, recordCount };
  }

  /** The end of a segment's last record (its header's end when it holds none). */
  private segmentEnd(segment: number): number {
    const opFirst = this.index.segmentOpFirst(segment);
    const opLast = this.index.segmentOpLast(segment);
    if (opLast < opFirst) return segmentHeaderSizeBytes;
    return this.index.position(opLast) + this.index.sizeBytes(opLast);
  }

  /** Reads the record of `op`, verifying its checksums and op (the not yet durable from memory). */
  async read(op: number): Promise<Prepare> {
    assert(Number.isInteger(op) && op >= 1 && op <= this.opMaxValue, `read of op ${op}`);
    if (op > this.writer.durableOpMax) return this.writer.unsyncedPrepare(op);
    const location = this.index.locate(op);
    const path = segmentPath(this.journalDir, location.segment);
    return withIoErrors(`reading op ${op} from ${path}`, () =>
      this.readCache.withHandle(path, async (handle) => {
        const bytes = new Uint8Array(location.sizeBytes);
        const read = await readAll(handle, bytes, location.position);
        return decodeRecord(this.owner, bytes.subarray(0, read), op, path, location.position);
      }),
    );
  }

  /**
   * Visits the records of `ops` (strictly ascending, each 1..opMax) in that order, each verified
   * as read() verifies one (the not yet durable from memory): visit(prepare, i) for ops[i]. Ops
   * of one segment that lie close together are read in one go (journal_read.ts, "Batched
   * reads"), so reading many scattered ops costs per byte, not a trip through the thread pool
   * per op. A visited prepare's bytes may be a view into its run's buffer (up to
   * journalBatchReadSizeBytesMax): copy one that is kept. Visiting each record as it is verified,
   * rather than returning them all, lets the caller's garbage die young.
   */
  async readMany(
    ops: readonly number[],
    visit: (prepare: Prepare, index: number) => void,
  ): Promise<void> {
    // The ops not yet durable are taken from memory now, before any await: once durable they
    // are read from the file. Ops ascend, so the durable ones are a prefix of the list.
    let durableCount = 0;
    const unsynced: Prepare[] = [];
    for (let i = 0; i < ops.length; i++) {
      const op = ops[i]!;
      assert(Number.isInteger(op) && op >= 1 && op <= this.opMaxValue, `read of op ${op}`);
      assert(i === 0 || op > ops[i - 1]!, 'readMany lists ops in ascending order');
      if (op <= this.writer.durableOpMax) durableCount = i + 1;
      else unsynced.push(this.writer.unsyncedPrepare(op));
    }
    for (const run of planBatchRuns(this.index, ops, durableCount)) {
      const path = segmentPath(this.journalDir, run.segment);
      const read = await withIoErrors(
        `reading ops ${ops[run.first]}..${ops[run.last - 1]} from ${path}`,
        () => this.readCache.withHandle(path, (handle) => readBatchRun(handle, run)),
      );
      visitBatchRun(this.owner, this.index, path, run, read, ops, visit);
    }
    unsynced.forEach((prepare, k) => visit(prepare, durableCount + k));
  }

  /** The size of op's record on disk (header and body), for callers that bound their reads. */
  recordSizeBytes(op: number): number {
    return this.index.sizeBytes(op);
  }

  /**
   * The prepares fromOp..toOp in order, read sequentially in large chunks and verified (header
   * checksum, body checksum, op). For speed, a yielded prepare's bytes are views into its read
   * chunk (up to journalReadChunkSizeBytes, never reused or written): copy a prepare that is kept
   * for long, or it keeps its whole chunk in memory.
   */
  async *entries(fromOp = 1, toOp: number = this.opMaxValue): AsyncGenerator<Prepare> {
    assert(Number.isInteger(fromOp) && fromOp >= 1, 'entries start at op 1 or later');
    assert(Number.isInteger(toOp) && toOp <= this.opMaxValue, 'entries end at opMax or before');
    const readers = new SegmentReaders(this.io, this.journalDir);
    try {
      let op = fromOp;
      while (op <= toOp) {
        if (op > this.writer.durableOpMax) {
          yield this.writer.unsyncedPrepare(op);
          op += 1;
          continue;
        }
        const lastOp = Math.min(toOp, this.writer.durableOpMax);
        const run = await readRun(this.index, readers, op, lastOp);
        // Decode one record at a time, as it is yielded, so that a consumer that drops each
        // prepare leaves only short-lived garbage.
        for (; op <= run.opLast; op++) yield decodeFromRun(this.owner, this.index, run, op);
      }
    } finally {
      await readers.close();
    }
  }

  /** Waits for pending appends to finish (durable or failed), then closes the files. */
  close(): Promise<void> {
    this.closed ??= this.closeNow();
    return this.closed;
  }

  private async closeNow(): Promise<void> {
    this.writer.beginClose(); // A write waiting for space gives up (journal_writer.ts).
    this.readCache.invalidate();
    while (this.writer.flushing !== null) await this.writer.flushing;
    if (this.writer.layingFreeSpace !== null) await this.writer.layingFreeSpace;
    try {
      await this.writer.closeFiles();
    } catch (error) {
      // After a failure the handle may be gone already; that error was reported.
      if (!this.writer.failed) throw ioError(`closing ${this.journalDir}`, error);
    }
  }
}
