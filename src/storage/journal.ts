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
// Appending uses group commit: at most one write + datasync is in flight; appends arriving
// meanwhile queue and go out together in one writev, sharing the next datasync. A record goes
// to a new segment when the current one holds at least one record and would otherwise exceed
// `segmentSizeBytesMax` (so a record larger than that sits alone in its segment). Before a new
// segment is created, the previous one is datasynced, so a crash can tear only the last one.
//
// Free space. A datasync after a write that extends the file must also commit the file's new
// size and block allocation (a filesystem journal commit); one that only overwrites allocated
// blocks flushes data alone. Measured here (5 KB write + fdatasync, 3,000 each): 148-188 µs
// wall and 58-68 µs CPU extending, 103-110 µs and 42-44 µs overwriting zeros. So the journal
// lays zeros down ahead of its records: when less than freeSpaceLowWaterBytes of zeros lie
// beyond the last record written, it writes the next freeSpaceChunkBytes of zeros (never past
// segmentSizeBytesMax) and datasyncs them, in the background. The chunk is small because its
// datasync shares the disk with the records' own: with coalesced appends at ~120K events/s,
// 1 MiB chunks gave a p99 of 19-23 ms where 4 MiB gave 25-26 (256 KiB: 21-22, and less
// throughput). Records go into that space only
// once its datasync has returned (a batch that would reach past it waits for it), so their own
// datasyncs flush data alone; a record past the zeros extends the file as before. Only the
// last segment holds free space: rolling to the next segment cuts the full one back to its
// records first. At open the zeros after the last record are recognised as free space, not a
// torn write (journal_scan.ts). Laying zeros down that fails (a full disk) only stops it for
// this process: the records are written as before, extending the file.
//
// Invariants:
// - Every byte of the last segment after its last record is zero (free space) up to its end.
// - opMax and headChecksum move synchronously in append(); durableOpMax only after the datasync
//   covering the record returned. An append's promise never resolves before that datasync.
// - ops 1..opMax are contiguous and each record's parent is the checksum of the one before
//   (op 1: the root prepare of the cluster); append asserts it, open verifies it.
// - After a failed write or sync, every pending append is rejected with KMB_ERR_STORAGE_IO and
//   every later append too: a failed fsync is never retried as if nothing had happened (the
//   page cache may have dropped the data); the process must restart and recover from disk.
// - Committed records are never rewritten. Records are cut off only (1) as a torn tail at open,
//   and (2) by truncate(opMax, {commitFloor}): a view change discarding uncommitted ops that the
//   cluster's new log does not hold. truncate refuses (asserts) to cut at or below the commit
//   floor the caller passes, waits for appends in flight, is durable when it resolves (file
//   truncated and datasynced, removed segments unlinked and the directory fsynced), and no
//   append may be made until it resolves.

import { AssertionError, assert } from '../core/assert.js';
import { checksumEqual, sha256SizeBytes } from '../core/checksum.js';
import { constants } from '../core/constants.js';
import { KmbError, kmbError } from '../core/errors.js';
import { bodyMatches, decodeHeader, headerSizeBytes, rootPrepare } from '../core/header.js';
import type { Prepare } from '../core/header.js';
import { asOp } from '../core/types.js';
import type { Op } from '../core/types.js';
import { readAll, realFileIO, writeAll } from './file_io.js';
import { SegmentReadCache } from './segment_read_cache.js';
import type { FileHandleLike, FileIO } from './file_io.js';
import { recoverJournal } from './journal_recover.js';
import type { TruncatedTail } from './journal_recover.js';
import { OpIndex } from './op_index.js';
import { createSegmentFile, journalDirOf, segmentPath } from './segment_file.js';
import { segmentHeaderSizeBytes, segmentIndexMax } from './segment_header.js';
import { corruptionError, ioError, withIoErrors } from './storage_errors.js';

export type { TruncatedTail } from './journal_recover.js';

const MiB = 1024 * 1024;
/** Appends waiting for the disk; the replica's pipeline keeps far fewer in flight. */
export const journalAppendQueueCountMax = 64 * 1024;
/** Records written by one writev (each is two iovecs; Linux takes 1024 per call). */
export const journalWriteBatchCountMax = 256;
/** Bytes written by one group-commit batch (a single larger record still goes alone). */
export const journalWriteBatchSizeBytesMax = 16 * MiB;
/** Zeros laid down at a time ahead of the records (see "Free space" above). */
export const freeSpaceChunkBytes = MiB;
/** More zeros are laid down once fewer than this lie beyond the last record written. */
export const freeSpaceLowWaterBytes = 2 * MiB;
const zeroChunk = new Uint8Array(MiB);
/** Bytes read per syscall by entries(); holds the largest record. */
export const journalReadChunkSizeBytes = 8 * MiB;

assert(journalReadChunkSizeBytes >= headerSizeBytes + constants.prepareBodySizeBytesMax);

export interface JournalOptions {
  /** The data directory; the journal lives in its `journal/` subdirectory. */
  readonly dir: string;
  readonly cluster: number;
  readonly io?: FileIO | undefined;
  /** Defaults to constants.journalSegmentSizeBytesMax; tests use tiny segments. */
  readonly segmentSizeBytesMax?: number | undefined;
  /** Lay zeros down ahead of the records (default true; see "Free space"). */
  readonly freeSpace?: boolean | undefined;
  /** Told once if laying zeros down fails (it then stops; records extend the file instead). */
  readonly onFreeSpaceError?: ((error: unknown) => void) | undefined;
  /** Corruption before the tail: refuse to open (default), or cut there (see journal_recover). */
  readonly onCorruption?: 'refuse' | 'cut' | undefined;
}

export interface RecoveryReport {
  readonly opMax: Op;
  readonly recordCount: number;
  readonly segmentCount: number;
  readonly sizeBytes: number;
  /** The torn tail cut off at open, or null when the journal ended cleanly. */
  readonly truncated: TruncatedTail | null;
}

/** Running totals for metrics; the shell reads them, the journal only adds. */
export interface JournalCounters {
  appends: number;
  /** Group-commit batches written (one writev each, per segment touched). */
  writes: number;
  /** datasyncs and directory fsyncs issued. */
  syncs: number;
  /** Record, segment header and free-space bytes written. */
  bytesWritten: number;
  /** Zero bytes laid down ahead of the records (part of bytesWritten). */
  freeSpaceBytesWritten: number;
}

interface PendingAppend {
  readonly prepare: Prepare;
  readonly segment: number;
  readonly position: number;
  readonly resolve: () => void;
  readonly reject: (error: KmbError) => void;
}

/** One chunk read by entries(): the records of ops up to opLast, from file position start. */
interface ReadRun {
  readonly path: string;
  readonly chunk: Uint8Array;
  readonly start: number;
  /** Bytes actually read (fewer than the chunk only if the file is shorter than the index). */
  readonly readBytes: number;
  readonly opLast: number;
}

interface Tail {
  readonly segment: number;
  readonly handle: FileHandleLike;
  /** Bytes of records (and the segment header) written, not necessarily synced. */
  sizeBytes: number;
  /** The end of the durable zeros beyond the records (= sizeBytes when there are none). */
  fileSizeBytes: number;
  /**
   * Zeros were written to this segment: the file may run past fileSizeBytes (a chunk whose
   * write or datasync failed counts for nothing there, but may have reached the file).
   */
  laidZeros: boolean;
  /** Written since the last datasync. */
  dirty: boolean;
}

export class Journal {
  readonly counters: JournalCounters = {
    appends: 0,
    writes: 0,
    syncs: 0,
    bytesWritten: 0,
    freeSpaceBytesWritten: 0,
  };
  private opMaxValue: number;
  private durableOpMaxValue: number;
  private headChecksumValue: Uint8Array;
  /** Where the next appended record goes (decided at append time, written later). */
  private placement: { segment: number; sizeBytes: number; recordCount: number };
  private tail: Tail;
  private closedSegmentsSizeBytes: number;
  private queue: PendingAppend[] = [];
  /** Appended prepares whose datasync has not completed, served to readers from memory. */
  private readonly unsynced = new Map<number, Prepare>();
  private flushing: Promise<void> | null = null;
  /** Zeros being laid down in the tail segment, from the tail's fileSizeBytes on. */
  private layingFreeSpace: Promise<void> | null = null;
  /** Whether to lay zeros down; false after an option said so or laying them down failed. */
  private freeSpace: boolean;
  private failure: KmbError | null = null;
  private truncating = false;
  /** The read handle random reads share (segment_read_cache.ts). */
  private readonly readCache: SegmentReadCache;
  private closing = false;
  private closed: Promise<void> | null = null;

  private constructor(
    private readonly dataDir: string,
    private readonly journalDir: string,
    private readonly cluster: number,
    private readonly io: FileIO,
    private readonly segmentSizeBytesMax: number,
    private readonly index: OpIndex,
    state: {
      headChecksum: Uint8Array;
      segmentSizesBytes: number[];
      tailHandle: FileHandleLike;
      tailFileSizeBytes: number;
    },
    readonly recovery: RecoveryReport,
    freeSpace: boolean,
    private readonly onFreeSpaceError: (error: unknown) => void,
  ) {
    this.freeSpace = freeSpace;
    this.readCache = new SegmentReadCache(io);
    this.opMaxValue = index.opMax;
    this.durableOpMaxValue = index.opMax;
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
    this.tail = {
      segment: tailSegment,
      handle: state.tailHandle,
      sizeBytes: tailSizeBytes,
      fileSizeBytes: Math.max(tailSizeBytes, state.tailFileSizeBytes),
      laidZeros: false,
      dirty: false,
    };
    this.closedSegmentsSizeBytes = recovery.sizeBytes - tailSizeBytes;
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
      options.freeSpace ?? true,
      options.onFreeSpaceError ?? (() => undefined),
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
    return asOp(this.durableOpMaxValue);
  }

  /** The checksum of the prepare at opMax (the root prepare's when the journal is empty). */
  get headChecksum(): Uint8Array {
    return this.headChecksumValue;
  }

  /** Bytes in all segment files (written, not necessarily synced). */
  get sizeBytes(): number {
    return this.closedSegmentsSizeBytes + this.tail.sizeBytes;
  }

  /** Zero bytes laid down (and durable) after the last record written, in the last segment. */
  get freeSpaceBytes(): number {
    return this.tail.fileSizeBytes - this.tail.sizeBytes;
  }

  /** Segment files on disk. */
  get segmentCount(): number {
    return this.tail.segment + 1;
  }

  /** Appends not yet durable. */
  get pendingCount(): number {
    return this.opMaxValue - this.durableOpMaxValue;
  }

  /** True after a write or sync failed; the journal then refuses appends. */
  get failed(): boolean {
    return this.failure !== null;
  }

  /**
   * Appends the next prepare. opMax and headChecksum advance at once, so the caller may append
   * the next prepare immediately; the promise resolves once the record is written and
   * datasynced, and rejects with KMB_ERR_STORAGE_IO if the write or sync failed.
   */
  append(prepare: Prepare): Promise<void> {
    assert(!this.closing, 'append after close');
    assert(!this.truncating, 'append while a truncation runs: await truncate() first');
    if (this.failure !== null) return Promise.reject(this.refusal());
    this.checkAppend(prepare);
    assert(this.queue.length < journalAppendQueueCountMax, 'journal append queue is full');
    const op = prepare.header.op;
    const place = this.place(op, headerSizeBytes + prepare.body.length);
    this.opMaxValue = op;
    this.headChecksumValue = prepare.header.checksum;
    this.unsynced.set(op, prepare);
    this.counters.appends += 1;
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ prepare, ...place, resolve, reject });
      this.flushing ??= this.flushLoop();
    });
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

  private async flushLoop(): Promise<void> {
    // Yield once so that appends made in the same tick join the first batch.
    await Promise.resolve();
    while (this.queue.length > 0 && this.failure === null) {
      const batch = this.takeBatch();
      try {
        await this.writeBatch(batch);
      } catch (error) {
        if (error instanceof AssertionError) throw error; // A programmer error kills the process.
        this.fail(error, batch);
        break;
      }
      this.complete(batch);
    }
    this.flushing = null;
  }

  private takeBatch(): PendingAppend[] {
    let count = 0;
    let sizeBytes = 0;
    for (const item of this.queue) {
      const itemSizeBytes = headerSizeBytes + item.prepare.body.length;
      if (count === journalWriteBatchCountMax) break;
      if (count > 0 && sizeBytes + itemSizeBytes > journalWriteBatchSizeBytesMax) break;
      count += 1;
      sizeBytes += itemSizeBytes;
    }
    assert(count > 0, 'a batch takes at least one append');
    return this.queue.splice(0, count);
  }

  /** Writes the batch (one writev per segment it touches), then one datasync. */
  private async writeBatch(batch: readonly PendingAppend[]): Promise<void> {
    let start = 0;
    while (start < batch.length) {
      const first = batch[start];
      assert(first !== undefined);
      let end = start + 1;
      while (end < batch.length && batch[end]?.segment === first.segment) end += 1;
      if (first.segment !== this.tail.segment) {
        await this.rollTo(first.segment, first.prepare.header.op);
      }
      assert(first.position === this.tail.sizeBytes, 'records are written back to back');
      const buffers = batch
        .slice(start, end)
        .flatMap((item) => [item.prepare.headerBytes, item.prepare.body]);
      const last = batch[end - 1];
      assert(last !== undefined);
      const batchEnd = last.position + headerSizeBytes + last.prepare.body.length;
      // Never write into zeros still being laid down: wait, then write into durable zeros.
      if (batchEnd > this.tail.fileSizeBytes && this.layingFreeSpace !== null) {
        await this.layingFreeSpace;
      }
      const written = await writeAll(this.tail.handle, buffers, first.position);
      this.counters.writes += 1;
      this.counters.bytesWritten += written;
      this.tail.sizeBytes += written;
      this.tail.fileSizeBytes = Math.max(this.tail.fileSizeBytes, this.tail.sizeBytes);
      this.tail.dirty = true;
      start = end;
    }
    await this.tail.handle.datasync();
    this.counters.syncs += 1;
    this.tail.dirty = false;
    this.layFreeSpaceIfLow();
  }

  /** Starts laying the next chunk of zeros down when few lie beyond the records (background). */
  private layFreeSpaceIfLow(): void {
    const tail = this.tail;
    if (!this.freeSpace || this.layingFreeSpace !== null || this.closing) return;
    if (tail.fileSizeBytes - tail.sizeBytes >= freeSpaceLowWaterBytes) return;
    const from = tail.fileSizeBytes;
    const to = Math.min(from + freeSpaceChunkBytes, this.segmentSizeBytesMax);
    if (to <= from) return;
    tail.laidZeros = true;
    this.layingFreeSpace = this.layZeros(tail, from, to).finally(() => {
      this.layingFreeSpace = null;
    });
  }

  /** Writes zeros over [from, to) of the tail segment and datasyncs them; rejects only on a bug. */
  private async layZeros(tail: Tail, from: number, to: number): Promise<void> {
    try {
      for (let position = from; position < to; position += zeroChunk.length) {
        const sizeBytes = Math.min(zeroChunk.length, to - position);
        await writeAll(tail.handle, [zeroChunk.subarray(0, sizeBytes)], position);
        this.counters.bytesWritten += sizeBytes;
        this.counters.freeSpaceBytesWritten += sizeBytes;
      }
      await tail.handle.datasync();
      this.counters.syncs += 1;
      // The zeros count only once durable, and only while this is still the tail (a cut or a
      // roll replaced or shortened it meanwhile: they waited for this promise first).
      if (this.tail === tail && tail.fileSizeBytes === from) tail.fileSizeBytes = to;
    } catch (error) {
      if (error instanceof AssertionError) throw error; // A programmer error kills the process.
      // A full or failing disk: records go on being written as before, extending the file;
      // whatever zeros reached the file are still zeros after the last record.
      this.freeSpace = false;
      this.onFreeSpaceError(error);
    }
  }

  /** Closes the tail segment (durable first) and creates the next one. */
  private async rollTo(segment: number, opFirst: number): Promise<void> {
    assert(segment === this.tail.segment + 1, 'segments are created in order');
    if (this.layingFreeSpace !== null) await this.layingFreeSpace;
    if (this.tail.fileSizeBytes > this.tail.sizeBytes || this.tail.laidZeros) {
      // Only the last segment holds free space: cut this one back to its records.
      await this.tail.handle.truncate(this.tail.sizeBytes);
      this.tail.fileSizeBytes = this.tail.sizeBytes;
      this.tail.dirty = true;
    }
    if (this.tail.dirty) {
      await this.tail.handle.datasync();
      this.counters.syncs += 1;
      this.tail.dirty = false;
    }
    await this.tail.handle.close();
    this.closedSegmentsSizeBytes += this.tail.sizeBytes;
    const header = { cluster: this.cluster, segmentIndex: segment, opFirst };
    const handle = await createSegmentFile(this.io, this.journalDir, header);
    this.counters.writes += 1;
    this.counters.syncs += 2;
    this.counters.bytesWritten += segmentHeaderSizeBytes;
    this.tail = {
      segment,
      handle,
      sizeBytes: segmentHeaderSizeBytes,
      fileSizeBytes: segmentHeaderSizeBytes,
      laidZeros: false,
      dirty: false,
    };
  }

  private complete(batch: readonly PendingAppend[]): void {
    const last = batch[batch.length - 1];
    assert(last !== undefined, 'a batch is not empty');
    assert(last.prepare.header.op > this.durableOpMaxValue, 'durability moves forward');
    // durableOpMax moves before the unsynced copies go, so a reader always finds each op.
    this.durableOpMaxValue = last.prepare.header.op;
    for (const item of batch) {
      this.unsynced.delete(item.prepare.header.op);
      item.resolve();
    }
  }

  private fail(error: unknown, batch: readonly PendingAppend[]): void {
    const what =
      `journal write or sync failed in ${this.journalDir}; ops after ${this.durableOpMaxValue} ` +
      'are not durable and the journal refuses further appends. Restart the replica: it ' +
      'recovers from what is on disk';
    this.failure = ioError(what, error);
    const pending = [...batch, ...this.queue];
    this.queue = [];
    for (const item of pending) item.reject(this.failure);
  }

  private refusal(): KmbError {
    assert(this.failure !== null);
    return kmbError('storage_io', `journal refuses: ${this.failure.message}`, this.failure);
  }

  /**
   * Discards every record after `opMax`: uncommitted ops that a view change replaced. Never at
   * or below `commitFloor` (the caller's commit number: committed records are the audit record
   * and are never cut). Waits for appends in flight; resolves once the cut is durable. Appends
   * must wait for it to resolve.
   */
  async truncate(opMax: number, options: { commitFloor: number }): Promise<void> {
    assert(!this.closing && !this.truncating, 'one truncation at a time, before close');
    assert(Number.isInteger(opMax) && opMax >= 0, 'truncate to a non-negative op');
    assert(
      opMax >= options.commitFloor,
      `truncate to ${opMax} below commit ${options.commitFloor}`,
    );
    assert(opMax <= this.opMaxValue, `truncate to ${opMax} beyond the head ${this.opMaxValue}`);
    this.truncating = true;
    this.readCache.invalidate(); // Segment files are about to be cut, removed or recreated.
    try {
      while (this.flushing !== null) await this.flushing;
      if (this.layingFreeSpace !== null) await this.layingFreeSpace;
      if (this.failure !== null) throw this.refusal();
      if (opMax === this.opMaxValue) return;
      const headChecksum =
        opMax === 0
          ? rootPrepare(this.cluster).header.checksum
          : (await this.read(opMax)).header.checksum;
      await this.cutAfter(opMax).catch((error: unknown) => {
        if (error instanceof AssertionError) throw error;
        this.failure = ioError(
          `truncating the journal in ${this.journalDir} to op ${opMax}`,
          error,
        );
        throw this.failure;
      });
      this.opMaxValue = opMax;
      this.durableOpMaxValue = Math.min(this.durableOpMaxValue, opMax);
      this.headChecksumValue = headChecksum;
      for (const op of this.unsynced.keys()) if (op > opMax) this.unsynced.delete(op);
    } finally {
      this.truncating = false;
    }
  }

  /** Removes the segments after the one holding op opMax + 1 and cuts that one at its record. */
  private async cutAfter(opMax: number): Promise<void> {
    const index = this.index;
    const segment = index.segment(opMax + 1);
    const position = index.position(opMax + 1);
    let removedClosedBytes = 0;
    for (let later = this.tail.segment; later > segment; later--) {
      const sizeBytes = later === this.tail.segment ? this.tail.sizeBytes : this.segmentEnd(later);
      if (later !== this.tail.segment) removedClosedBytes += sizeBytes;
      if (later === this.tail.segment) await this.tail.handle.close();
      await this.io.unlink(segmentPath(this.journalDir, later));
    }
    if (segment !== this.tail.segment) {
      await this.io.fsyncDir(this.journalDir);
      this.counters.syncs += 1;
      removedClosedBytes += this.segmentEnd(segment);
      const handle = await this.io.open(segmentPath(this.journalDir, segment), 'readwrite');
      const sizeBytes = this.segmentEnd(segment);
      this.tail = {
        segment,
        handle,
        sizeBytes,
        fileSizeBytes: sizeBytes,
        laidZeros: false,
        dirty: false,
      };
    }
    await this.tail.handle.truncate(position);
    await this.tail.handle.datasync();
    this.counters.syncs += 1;
    this.closedSegmentsSizeBytes -= removedClosedBytes;
    this.tail.sizeBytes = position;
    this.tail.fileSizeBytes = position;
    this.tail.dirty = false;
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
    if (op > this.durableOpMaxValue) return this.unsyncedPrepare(op);
    const location = this.index.locate(op);
    const path = segmentPath(this.journalDir, location.segment);
    return withIoErrors(`reading op ${op} from ${path}`, () =>
      this.readCache.withHandle(path, async (handle) => {
        const bytes = new Uint8Array(location.sizeBytes);
        const read = await readAll(handle, bytes, location.position);
        return this.decodeRecord(bytes.subarray(0, read), op, path, location.position);
      }),
    );
  }

  private unsyncedPrepare(op: number): Prepare {
    if (this.failure !== null) throw this.refusal();
    const prepare = this.unsynced.get(op);
    assert(prepare !== undefined, `op ${op} is neither durable nor pending`);
    return prepare;
  }

  /** Verifies one record read back from disk; bytes from disk never trip an assertion. */
  private decodeRecord(bytes: Uint8Array, op: number, path: string, position: number): Prepare {
    const decoded = decodeHeader(bytes);
    if (!decoded.ok) {
      throw this.corrupt(path, position, op, `record header is invalid (${decoded.problem})`);
    }
    const header = decoded.header;
    let problem: string | null = null;
    if (header.op !== op) problem = `record holds op ${header.op}`;
    else if (header.cluster !== this.cluster) problem = `record is of cluster ${header.cluster}`;
    else if (headerSizeBytes + header.bodySizeBytes !== bytes.length) {
      problem = `record is ${bytes.length} bytes on disk, its header says ${header.bodySizeBytes}`;
    }
    if (problem !== null) throw this.corrupt(path, position, op, problem);
    const body = bytes.subarray(headerSizeBytes);
    if (!bodyMatches(header, body)) {
      throw this.corrupt(path, position, op, 'record body does not match its body checksum');
    }
    return { header, headerBytes: bytes.subarray(0, headerSizeBytes), body };
  }

  private corrupt(file: string, position: number, op: number, problem: string): KmbError {
    return corruptionError(this.dataDir, { file, position, op, problem });
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
        if (op > this.durableOpMaxValue) {
          yield this.unsyncedPrepare(op);
          op += 1;
          continue;
        }
        const run = await this.readRun(readers, op, Math.min(toOp, this.durableOpMaxValue));
        // Decode one record at a time, as it is yielded, so that a consumer that drops each
        // prepare leaves only short-lived garbage.
        for (; op <= run.opLast; op++) yield this.decodeFromRun(run, op);
      }
    } finally {
      await readers.close();
    }
  }

  /** Reads the records from `op` up to `lastOp` that lie in one segment and fit in one chunk. */
  private async readRun(readers: SegmentReaders, op: number, lastOp: number): Promise<ReadRun> {
    const index = this.index;
    const segment = index.segment(op);
    const opLast = index.runOpLast(
      op,
      Math.min(lastOp, index.segmentOpLast(segment)),
      journalReadChunkSizeBytes,
    );
    const start = index.position(op);
    const path = segmentPath(this.journalDir, segment);
    const chunk = new Uint8Array(index.position(opLast) + index.sizeBytes(opLast) - start);
    const readBytes = await withIoErrors(`reading ${path}`, async () =>
      readAll(await readers.handle(segment), chunk, start),
    );
    return { path, chunk, start, readBytes, opLast };
  }

  private decodeFromRun(run: ReadRun, op: number): Prepare {
    const position = this.index.position(op);
    const from = position - run.start;
    const to = Math.min(from + this.index.sizeBytes(op), run.readBytes);
    return this.decodeRecord(run.chunk.subarray(from, Math.max(from, to)), op, run.path, position);
  }

  /** Waits for pending appends to finish (durable or failed), then closes the files. */
  close(): Promise<void> {
    this.closed ??= this.closeNow();
    return this.closed;
  }

  private async closeNow(): Promise<void> {
    this.closing = true;
    this.readCache.invalidate();
    while (this.flushing !== null) await this.flushing;
    if (this.layingFreeSpace !== null) await this.layingFreeSpace;
    try {
      await this.tail.handle.close();
    } catch (error) {
      // After a failure the handle may be gone already; that error was reported.
      if (this.failure === null) throw ioError(`closing ${this.journalDir}`, error);
    }
  }
}

/** One open read handle at a time, for sequential reads across segments. */
class SegmentReaders {
  private current: { segment: number; handle: FileHandleLike } | null = null;

  constructor(
    private readonly io: FileIO,
    private readonly journalDir: string,
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
