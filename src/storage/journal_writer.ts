// The journal's write path (journal.ts is the facade): the tail segment, the group-commit flush
// loop, free space laid down ahead of the records, rolling to a new segment, and waiting for
// space on a full disk. journal.ts decides where each record goes (append) and hands it here;
// this module owns every byte written to a segment after open, and every truncation of one.
//
// Appending uses group commit: at most one write + datasync is in flight; appends arriving
// meanwhile queue and go out together in one writev, sharing the next datasync. When a record
// was placed in the next segment (journal.ts says when), the batch rolls to it: the previous
// segment is datasynced before the new one is created, so a crash can tear only the last one.
//
// Free space. A datasync after a write that extends the file must also commit the file's new
// size and block allocation (a filesystem journal commit); one that only overwrites allocated
// blocks flushes data alone, and costs less wall time and CPU (docs/performance.md, "Figures
// behind the code"). So the journal lays zeros down ahead of its records: when less than
// freeSpaceLowWaterBytes of zeros lie beyond the last record written, it writes the next
// freeSpaceChunkBytes of zeros (never past segmentSizeBytesMax) and datasyncs them, in the
// background. The chunk is small because its datasync shares the disk with the records' own:
// under coalesced appends 1 MiB chunks gave a lower p99 than 4 MiB, and more throughput than
// 256 KiB (same section). Records go into that space only
// once its datasync has returned (a batch that would reach past it waits for it), so their own
// datasyncs flush data alone; a record past the zeros extends the file as before. Only the
// last segment holds free space: rolling to the next segment cuts the full one back to its
// records first. At open the zeros after the last record are recognised as free space, not a
// torn write (journal_scan.ts). Laying zeros down that fails stops it (the records are written
// as before, extending the file): for this process, or, on a full disk, until records are
// durable again after the wait below.
//
// A full disk. When a record write, a datasync or the creation of the next segment fails with
// ENOSPC or EDQUOT, the batch stays queued (its prepares stay in `unsynced`, readable), no
// append resolves or rejects, `full` turns true (onFull is told), and every
// fullRetryIntervalMs the batch is written again — the same bytes at the same positions, then
// a datasync (space_wait.ts says why a bare datasync would not do). Appends made meanwhile queue
// behind it (the caller bounds them). A retry is idempotent at every step of a roll: the full
// segment is cut, synced and closed once (a batch's records in a closed segment are durable and
// are not written again); a new segment whose creation failed half-way is ours alone (nothing
// points into it) and is removed and created again. Once a batch is durable, `full` turns
// false, and laying free space down resumes if the full disk had stopped it. close() while full
// stops waiting: the pending appends reject with KMB_ERR_STORAGE_FULL (never acknowledged). Any
// other error during a wait (EIO) is a failure as below.
//
// Invariants:
// - Every byte of the last segment after its last record is zero (free space) up to its end.
// - durableOpMax moves only after the datasync covering the record returned, and before the
//   record's unsynced copy goes. An append's promise never resolves before that datasync.
// - After a failed write or sync, every pending append is rejected with KMB_ERR_STORAGE_IO and
//   every later append too: a failed fsync is never retried as if nothing had happened (the
//   page cache may have dropped the data); the process must restart and recover from disk.
//   Except on a full disk (ENOSPC, EDQUOT): a wait, not a failure (see "A full disk").

import { AssertionError, assert } from '../core/assert.js';
import { KmbError, kmbError } from '../core/errors.js';
import { headerSizeBytes } from '../core/header.js';
import type { Prepare } from '../core/header.js';
import { isNoSpaceError, writeAll } from './file_io.js';
import type { FileHandleLike, FileIO } from './file_io.js';
import { createSegmentFile, segmentPath } from './segment_file.js';
import { segmentHeaderSizeBytes } from './segment_header.js';
import { SpaceWait } from './space_wait.js';
import type { SpaceWaitOptions } from './space_wait.js';
import { ioError } from './storage_errors.js';

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

/** Where journal.ts placed a record: its segment and byte position there. */
export interface RecordPlace {
  readonly segment: number;
  readonly position: number;
}

interface PendingAppend extends RecordPlace {
  readonly prepare: Prepare;
  readonly resolve: () => void;
  readonly reject: (error: KmbError) => void;
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
  /** Cut back, synced and closed by a roll whose next segment is not created yet. */
  closed: boolean;
}

export interface JournalWriterOptions {
  readonly io: FileIO;
  readonly journalDir: string;
  readonly cluster: number;
  readonly segmentSizeBytesMax: number;
  /** The journal's counters, shared: the writer adds to them. */
  readonly counters: JournalCounters;
  /** The last segment as recovery left it, open for reading and writing. */
  readonly tailSegment: number;
  readonly tailHandle: FileHandleLike;
  /** The end of its last record, and of the zeros after it. */
  readonly tailSizeBytes: number;
  readonly tailFileSizeBytes: number;
  /** Bytes of every segment before the last one. */
  readonly closedSegmentsSizeBytes: number;
  /** The last op on disk at open (all durable). */
  readonly durableOpMax: number;
  /** Lay zeros down ahead of the records (see "Free space"). */
  readonly freeSpace: boolean;
  /** Told once if laying zeros down fails (it then stops; records extend the file instead). */
  readonly onFreeSpaceError: (error: unknown) => void;
  readonly spaceWait: SpaceWaitOptions;
}

export class JournalWriter {
  private readonly io: FileIO;
  private readonly journalDir: string;
  private readonly cluster: number;
  private readonly segmentSizeBytesMax: number;
  private readonly counters: JournalCounters;
  private readonly onFreeSpaceError: (error: unknown) => void;
  private tail: Tail;
  private closedSegmentsSizeBytes: number;
  private durableOpMaxValue: number;
  private queue: PendingAppend[] = [];
  /** Appended prepares whose datasync has not completed, served to readers from memory. */
  private readonly unsynced = new Map<number, Prepare>();
  private flushingValue: Promise<void> | null = null;
  /** Zeros being laid down in the tail segment, from the tail's fileSizeBytes on. */
  private layingFreeSpaceValue: Promise<void> | null = null;
  /** Whether to lay zeros down; false after an option said so or laying them down failed. */
  private freeSpace: boolean;
  /** Laying zeros down stopped on a full disk: it resumes once the disk takes records again. */
  private freeSpaceStoppedByFullDisk = false;
  /** Writes wait for space (see "A full disk"). */
  private readonly spaceWait: SpaceWait;
  /** A segment whose creation failed on a full disk; its partial file is removed on retry. */
  private partialSegment: number | null = null;
  private failure: KmbError | null = null;
  private closingValue = false;

  constructor(options: JournalWriterOptions) {
    this.io = options.io;
    this.journalDir = options.journalDir;
    this.cluster = options.cluster;
    this.segmentSizeBytesMax = options.segmentSizeBytesMax;
    this.counters = options.counters;
    this.onFreeSpaceError = options.onFreeSpaceError;
    this.spaceWait = new SpaceWait(options.spaceWait);
    this.freeSpace = options.freeSpace;
    this.durableOpMaxValue = options.durableOpMax;
    this.tail = {
      segment: options.tailSegment,
      handle: options.tailHandle,
      sizeBytes: options.tailSizeBytes,
      fileSizeBytes: Math.max(options.tailSizeBytes, options.tailFileSizeBytes),
      laidZeros: false,
      dirty: false,
      closed: false,
    };
    this.closedSegmentsSizeBytes = options.closedSegmentsSizeBytes;
  }

  /** The highest op whose datasync has completed. */
  get durableOpMax(): number {
    return this.durableOpMaxValue;
  }

  /** Bytes in all segment files (written, not necessarily synced). */
  get sizeBytes(): number {
    return this.closedSegmentsSizeBytes + (this.tail.closed ? 0 : this.tail.sizeBytes);
  }

  /** Zero bytes laid down (and durable) after the last record written, in the last segment. */
  get freeSpaceBytes(): number {
    return this.tail.fileSizeBytes - this.tail.sizeBytes;
  }

  /** Segment files on disk. */
  get segmentCount(): number {
    return this.tail.segment + 1;
  }

  /** Appends queued and not yet taken into a batch. */
  get queuedCount(): number {
    return this.queue.length;
  }

  /** The flush loop in progress, if any (it ends once the queue is empty or on a failure). */
  get flushing(): Promise<void> | null {
    return this.flushingValue;
  }

  /** Zeros being laid down in the background, if any. */
  get layingFreeSpace(): Promise<void> | null {
    return this.layingFreeSpaceValue;
  }

  /** True after a write or sync failed; the journal then refuses appends. */
  get failed(): boolean {
    return this.failure !== null;
  }

  /** True while writes wait for space on a full disk (appends queue, nothing resolves). */
  get full(): boolean {
    return this.spaceWait.full;
  }

  get closing(): boolean {
    return this.closingValue;
  }

  /** close() began: no free space is laid down from now on, and a wait for space gives up. */
  beginClose(): void {
    this.closingValue = true;
    this.spaceWait.cancel(); // A write waiting for space gives up now (see "A full disk").
  }

  /** Queues a placed record; resolves once it is durable (see journal.ts append()). */
  enqueue(prepare: Prepare, place: RecordPlace): Promise<void> {
    this.unsynced.set(prepare.header.op, prepare);
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ prepare, ...place, resolve, reject });
      this.flushingValue ??= this.flushLoop();
    });
  }

  /** An op appended but not durable yet, from memory (refused after a failure). */
  unsyncedPrepare(op: number): Prepare {
    if (this.failure !== null) throw this.refusal();
    const prepare = this.unsynced.get(op);
    assert(prepare !== undefined, `op ${op} is neither durable nor pending`);
    return prepare;
  }

  /** After a truncation to opMax: forgets every op after it. */
  forgetAfter(opMax: number): void {
    this.durableOpMaxValue = Math.min(this.durableOpMaxValue, opMax);
    for (const op of this.unsynced.keys()) if (op > opMax) this.unsynced.delete(op);
  }

  /** Records a failure outside the write path (a truncation); returns it. */
  failWith(failure: KmbError): KmbError {
    this.failure = failure;
    return failure;
  }

  private async flushLoop(): Promise<void> {
    // Yield once so that appends made in the same tick join the first batch.
    await Promise.resolve();
    while (this.queue.length > 0 && this.failure === null) {
      const batch = this.takeBatch();
      if (!(await this.writeDurably(batch))) break;
      this.complete(batch);
    }
    this.flushingValue = null;
  }

  /**
   * Writes the batch and datasyncs it, waiting and retrying while the disk is full (see "A full
   * disk"). False when it failed: the batch and the queue were rejected.
   */
  private async writeDurably(batch: readonly PendingAppend[]): Promise<boolean> {
    for (;;) {
      try {
        await this.writeBatch(batch);
        if (this.spaceWait.leave() && this.freeSpaceStoppedByFullDisk) {
          this.freeSpaceStoppedByFullDisk = false;
          this.freeSpace = true;
        }
        return true;
      } catch (error) {
        if (error instanceof AssertionError) throw error; // A programmer error kills the process.
        if (!isNoSpaceError(error) || this.closingValue) {
          this.fail(error, batch);
          return false;
        }
        this.spaceWait.enter(error);
        this.rewind(batch);
        await this.spaceWait.wait();
      }
    }
  }

  /**
   * After a failed attempt, the tail forgets what the batch wrote to it, so that the retry
   * writes the same bytes at the same positions again (a failed datasync may have lost them).
   */
  private rewind(batch: readonly PendingAppend[]): void {
    if (this.tail.closed) return; // The roll closed it durably; the rest go to the next one.
    const first = batch.find((item) => item.segment === this.tail.segment);
    if (first === undefined) return;
    assert(first.position <= this.tail.sizeBytes, 'a rewind never moves forward');
    this.tail.sizeBytes = first.position;
    this.tail.dirty = true;
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
    // A retry after a full disk: records in a segment a roll has since closed are durable.
    while (start < batch.length && (batch[start]?.segment ?? 0) < this.liveSegment()) start += 1;
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
      if (batchEnd > this.tail.fileSizeBytes && this.layingFreeSpaceValue !== null) {
        await this.layingFreeSpaceValue;
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
    if (!this.freeSpace || this.layingFreeSpaceValue !== null || this.closingValue) return;
    if (tail.fileSizeBytes - tail.sizeBytes >= freeSpaceLowWaterBytes) return;
    const from = tail.fileSizeBytes;
    const to = Math.min(from + freeSpaceChunkBytes, this.segmentSizeBytesMax);
    if (to <= from) return;
    tail.laidZeros = true;
    this.layingFreeSpaceValue = this.layZeros(tail, from, to).finally(() => {
      this.layingFreeSpaceValue = null;
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
      // Stopped by a full disk, it resumes once a batch of records is durable after a pause.
      if (isNoSpaceError(error)) this.freeSpaceStoppedByFullDisk = true;
      this.onFreeSpaceError(error);
    }
  }

  /** The segment records are written to next: the tail's, or the next one once it is closed. */
  private liveSegment(): number {
    return this.tail.closed ? this.tail.segment + 1 : this.tail.segment;
  }

  /**
   * Closes the tail segment (durable first) and creates the next one. Idempotent after a full
   * disk stopped it half-way: a closed tail is not closed again, and a next segment whose
   * creation failed is removed (it holds no record) and created again.
   */
  private async rollTo(segment: number, opFirst: number): Promise<void> {
    assert(segment === this.tail.segment + 1, 'segments are created in order');
    if (!this.tail.closed) await this.closeTail();
    const header = { cluster: this.cluster, segmentIndex: segment, opFirst };
    if (this.partialSegment === segment) {
      const path = segmentPath(this.journalDir, segment);
      if ((await this.io.stat(path)) !== null) await this.io.unlink(path);
    }
    this.partialSegment = segment;
    const handle = await createSegmentFile(this.io, this.journalDir, header);
    this.partialSegment = null;
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
      closed: false,
    };
  }

  /** Cuts the full tail segment back to its records, datasyncs it and closes it. */
  private async closeTail(): Promise<void> {
    if (this.layingFreeSpaceValue !== null) await this.layingFreeSpaceValue;
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
    this.tail.closed = true;
    this.closedSegmentsSizeBytes += this.tail.sizeBytes;
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
    this.failure = isNoSpaceError(error)
      ? kmbError(
          'storage_full',
          `journal closed while waiting for space in ${this.journalDir}; ops after ` +
            `${this.durableOpMaxValue} were never durable nor acknowledged`,
          error,
        )
      : ioError(what, error);
    const pending = [...batch, ...this.queue];
    this.queue = [];
    for (const item of pending) item.reject(this.failure);
  }

  /** The error an append or read gets after a failure: the failure's code, and it as cause. */
  refusal(): KmbError {
    assert(this.failure !== null);
    const message = `journal refuses: ${this.failure.message}`;
    return new KmbError(this.failure.code, message, { cause: this.failure });
  }

  /**
   * The file side of journal.ts truncate(): removes the segments after `segment` (closing the
   * tail if it is one of them), makes `segment` the tail, cuts it at `position` and datasyncs
   * it. `segmentEnd` gives a closed segment's size (the end of its last record).
   */
  async cutTo(
    segment: number,
    position: number,
    segmentEnd: (segment: number) => number,
  ): Promise<void> {
    let removedClosedBytes = 0;
    for (let later = this.tail.segment; later > segment; later--) {
      if (later !== this.tail.segment) removedClosedBytes += segmentEnd(later);
      if (later === this.tail.segment) await this.tail.handle.close();
      await this.io.unlink(segmentPath(this.journalDir, later));
    }
    if (segment !== this.tail.segment) {
      await this.io.fsyncDir(this.journalDir);
      this.counters.syncs += 1;
      removedClosedBytes += segmentEnd(segment);
      const handle = await this.io.open(segmentPath(this.journalDir, segment), 'readwrite');
      const sizeBytes = segmentEnd(segment);
      this.tail = {
        segment,
        handle,
        sizeBytes,
        fileSizeBytes: sizeBytes,
        laidZeros: false,
        dirty: false,
        closed: false,
      };
    }
    await this.tail.handle.truncate(position);
    await this.tail.handle.datasync();
    this.counters.syncs += 1;
    this.closedSegmentsSizeBytes -= removedClosedBytes;
    this.tail.sizeBytes = position;
    this.tail.fileSizeBytes = position;
    this.tail.dirty = false;
  }

  /** Closes the tail segment's handle, unless a roll closed it already. */
  async closeFiles(): Promise<void> {
    if (!this.tail.closed) await this.tail.handle.close();
  }
}
