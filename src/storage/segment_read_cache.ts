// One cached read handle for the journal's random reads (scrubbing, repairs served to peers,
// checks, and the batched reads of stream queries: Journal.readMany). Opening and closing a segment file for every record read cost three trips through
// the thread pool per read; the scrubber alone reads a record every tick, which was a large
// share of an idle replica's CPU (docs/performance.md, "Figures behind the code"). Consecutive
// reads mostly hit one segment, so one open handle, kept until a read needs another segment,
// removes nearly all of it.
//
// Invariants: a handle is closed only once no read is using it (reads on one handle may run
// concurrently: every read is positional); invalidate() retires the cached handle at once, so a
// segment file that is removed and created again (a truncation) is never read through the old
// descriptor; a handle whose open failed is not kept.

import { assert } from '../core/assert.js';
import type { FileHandleLike, FileIO } from './file_io.js';

interface Reader {
  readonly path: string;
  readonly handle: Promise<FileHandleLike>;
  users: number;
  retired: boolean;
}

export class SegmentReadCache {
  private reader: Reader | null = null;
  /** Files opened so far (for tests and counters). */
  openCount = 0;

  constructor(private readonly io: FileIO) {}

  /** Runs `work` with a read handle on `path`, opening one only if the cached one is another's. */
  async withHandle<T>(path: string, work: (handle: FileHandleLike) => Promise<T>): Promise<T> {
    let reader = this.reader;
    if (reader === null || reader.path !== path) {
      if (reader !== null) this.retire(reader);
      this.openCount += 1;
      reader = { path, handle: this.io.open(path, 'read'), users: 0, retired: false };
      this.reader = reader;
    }
    reader.users += 1;
    try {
      return await work(await reader.handle);
    } catch (error) {
      this.retire(reader); // A failed open or read: the next read starts from a fresh handle.
      throw error;
    } finally {
      reader.users -= 1;
      assert(reader.users >= 0, 'reader use count');
      if (reader.retired && reader.users === 0) closeQuietly(reader.handle);
    }
  }

  /** Drops the cached handle (closed once its reads finish): call before segment files change. */
  invalidate(): void {
    if (this.reader !== null) this.retire(this.reader);
  }

  private retire(reader: Reader): void {
    if (this.reader === reader) this.reader = null;
    if (reader.retired) return;
    reader.retired = true;
    if (reader.users === 0) closeQuietly(reader.handle);
  }
}

/** Closes a read handle whose reads are over; a failure to close a read-only descriptor changes
 * nothing on disk, so it is ignored. */
function closeQuietly(handle: Promise<FileHandleLike>): void {
  handle.then(
    (opened) => opened.close().catch(() => undefined),
    () => undefined,
  );
}
