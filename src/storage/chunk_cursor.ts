// Sequential reading of one file in large chunks, for scanning journal segments at start-up and
// in verify: one read syscall per chunk, not one per record. `bytes(position, length)` returns a
// view of the current chunk when it covers the range, and otherwise reads a new chunk starting at
// `position`; so a record that straddles a chunk end is re-read whole from its start.
//
// Invariants: chunks are freshly allocated and never reused, so a returned view stays valid
// after later calls; a returned view is shorter than asked only at end of file; nothing is ever
// written.

import { assert } from '../core/assert.js';
import { readAll } from './file_io.js';
import type { FileHandleLike } from './file_io.js';

export class ChunkCursor {
  private chunk: Uint8Array = new Uint8Array(0);
  private chunkPosition = 0;
  /** Read syscalls issued (chunks read), for tests and benchmarks. */
  chunkReadCount = 0;

  constructor(
    private readonly handle: FileHandleLike,
    /** The file's size when the cursor was made; reads never go past it. */
    readonly sizeBytes: number,
    private readonly chunkSizeBytes: number,
  ) {
    assert(sizeBytes >= 0, 'file size must not be negative');
    assert(chunkSizeBytes > 0, 'chunk size must be positive');
  }

  /** Bytes [position, position + length), clipped at end of file. */
  async bytes(position: number, length: number): Promise<Uint8Array> {
    const view = this.peek(position, length);
    if (view !== null) return view;
    await this.load(position, length);
    const start = position - this.chunkPosition;
    const end = Math.min(position + length, this.sizeBytes) - this.chunkPosition;
    return this.chunk.subarray(start, Math.max(start, Math.min(end, this.chunk.length)));
  }

  /**
   * Bytes [position, position + length) clipped at end of file, if the current chunk holds them;
   * otherwise null (then `load`). Synchronous: the per-record fast path of a scan.
   */
  peek(position: number, length: number): Uint8Array | null {
    const end = Math.min(position + length, this.sizeBytes);
    if (end <= position) return new Uint8Array(0);
    if (position < this.chunkPosition || end > this.chunkPosition + this.chunk.length) return null;
    return this.chunk.subarray(position - this.chunkPosition, end - this.chunkPosition);
  }

  /** Reads a new chunk starting at `position`, of the chunk size or `length` if larger. */
  async load(position: number, length: number): Promise<void> {
    assert(position >= 0 && length >= 0, 'cursor range must not be negative');
    if (position >= this.sizeBytes) return;
    await this.fill(position, Math.max(this.chunkSizeBytes, length));
  }

  private async fill(position: number, length: number): Promise<void> {
    const sizeBytes = Math.min(length, this.sizeBytes - position);
    // A plain Uint8Array, not a Buffer: its subarrays are much cheaper to make, per record.
    const chunk = new Uint8Array(sizeBytes);
    const read = await readAll(this.handle, chunk, position);
    this.chunkReadCount += 1;
    this.chunk = chunk.subarray(0, read);
    this.chunkPosition = position;
  }

  /** True when every byte in [from, to) is zero (an empty range is zero). */
  async isZero(from: number, to: number): Promise<boolean> {
    let position = from;
    const end = Math.min(to, this.sizeBytes);
    while (position < end) {
      const window = await this.bytes(position, Math.min(this.chunkSizeBytes, end - position));
      if (window.length === 0) return true;
      if (!isAllZero(window)) return false;
      position += window.length;
    }
    return true;
  }
}

export function isAllZero(bytes: Uint8Array): boolean {
  for (let i = 0; i < bytes.length; i++) if (bytes[i] !== 0) return false;
  return true;
}

/** Index of the last non-zero byte, or -1 when all are zero. */
export function lastNonZeroIndex(bytes: Uint8Array): number {
  for (let i = bytes.length - 1; i >= 0; i--) if (bytes[i] !== 0) return i;
  return -1;
}
