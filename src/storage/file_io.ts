// The file I/O that the journal and the superblock go through. It is an interface so that a test
// (or the simulator) can pass its own implementation: record the order of writes and syncs,
// or fail a datasync on purpose. `realFileIO` is the production implementation on node:fs.
//
// Invariants: every write and read is positional (no shared file offset, so concurrent reads on
// one handle are safe); `write` is one writev call and may write fewer bytes than asked, so
// callers use `writeAll`; `read` may return fewer bytes than asked at end of file, so callers
// use `readAll`. Modes never truncate: 'create' fails if the file exists, so that nothing on
// disk is ever overwritten by accident.

import { open as fsOpen, mkdir, readdir, rename, stat, unlink } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';

import { assert } from '../core/assert.js';

/**
 * How a file is opened:
 * - 'read': read only; the file must exist.
 * - 'readwrite': read and positional write; the file must exist.
 * - 'create': read and positional write; the file must NOT exist (exclusive create).
 */
export type OpenMode = 'read' | 'readwrite' | 'create';

export interface FileHandleLike {
  /** Writes the buffers in order at `position` with one writev; returns the bytes written. */
  write(buffers: readonly Uint8Array[], position: number): Promise<number>;
  /** Reads into `buffer` from `position`; returns the bytes read (fewer at end of file). */
  read(buffer: Uint8Array, position: number): Promise<number>;
  /** fdatasync: the data, and the metadata needed to read it back, are durable. */
  datasync(): Promise<void>;
  /** fsync: data and all metadata are durable. */
  sync(): Promise<void>;
  truncate(sizeBytes: number): Promise<void>;
  size(): Promise<number>;
  close(): Promise<void>;
}

export interface FileStat {
  readonly sizeBytes: number;
  readonly isFile: boolean;
  readonly isDirectory: boolean;
}

export interface FileIO {
  open(path: string, mode: OpenMode): Promise<FileHandleLike>;
  /** Names (not paths) of the entries in a directory, in no particular order. */
  readdir(dirPath: string): Promise<string[]>;
  mkdir(dirPath: string, options: { recursive: boolean }): Promise<void>;
  /** null when nothing exists at `path`. */
  stat(path: string): Promise<FileStat | null>;
  unlink(path: string): Promise<void>;
  /** Atomically replaces `toPath` with `fromPath` (same directory). */
  rename(fromPath: string, toPath: string): Promise<void>;
  /** Makes the directory's entries durable (file creations, removals, renames). */
  fsyncDir(dirPath: string): Promise<void>;
}

const openFlags: Record<OpenMode, string> = { read: 'r', readwrite: 'r+', create: 'wx+' };

class RealFileHandle implements FileHandleLike {
  constructor(private readonly handle: FileHandle) {}

  async write(buffers: readonly Uint8Array[], position: number): Promise<number> {
    const { bytesWritten } = await this.handle.writev(buffers, position);
    return bytesWritten;
  }

  async read(buffer: Uint8Array, position: number): Promise<number> {
    const { bytesRead } = await this.handle.read(buffer, 0, buffer.length, position);
    return bytesRead;
  }

  datasync(): Promise<void> {
    return this.handle.datasync();
  }

  sync(): Promise<void> {
    return this.handle.sync();
  }

  truncate(sizeBytes: number): Promise<void> {
    return this.handle.truncate(sizeBytes);
  }

  async size(): Promise<number> {
    return (await this.handle.stat()).size;
  }

  close(): Promise<void> {
    return this.handle.close();
  }
}

/** Errors that mean the disk (or the user's quota) is full. */
const noSpaceCodes: ReadonlySet<string> = new Set(['ENOSPC', 'EDQUOT']);

/**
 * Whether a failed system call ran out of space (ENOSPC, EDQUOT): the journal and the
 * superblock wait and write again instead of failing (journal_writer.ts, "A full disk").
 */
export function isNoSpaceError(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const code = (error as NodeJS.ErrnoException).code;
  return typeof code === 'string' && noSpaceCodes.has(code);
}

function isNotFound(error: unknown): boolean {
  return error instanceof Error && (error as NodeJS.ErrnoException).code === 'ENOENT';
}

export const realFileIO: FileIO = {
  async open(path, mode) {
    return new RealFileHandle(await fsOpen(path, openFlags[mode]));
  },
  readdir(dirPath) {
    return readdir(dirPath);
  },
  async mkdir(dirPath, options) {
    await mkdir(dirPath, { recursive: options.recursive });
  },
  async stat(path) {
    try {
      const stats = await stat(path);
      return { sizeBytes: stats.size, isFile: stats.isFile(), isDirectory: stats.isDirectory() };
    } catch (error) {
      if (isNotFound(error)) return null;
      throw error;
    }
  },
  unlink(path) {
    return unlink(path);
  },
  rename(fromPath, toPath) {
    return rename(fromPath, toPath);
  },
  async fsyncDir(dirPath) {
    const handle = await fsOpen(dirPath, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  },
};

/** Writes every byte of `buffers` at `position`, looping over short writes. */
export async function writeAll(
  handle: FileHandleLike,
  buffers: readonly Uint8Array[],
  position: number,
): Promise<number> {
  let pending = buffers.filter((buffer) => buffer.length > 0);
  const totalBytes = pending.reduce((sum, buffer) => sum + buffer.length, 0);
  let writtenBytes = 0;
  while (pending.length > 0) {
    const written = await handle.write(pending, position + writtenBytes);
    assert(written > 0, 'writev wrote nothing');
    writtenBytes += written;
    pending = dropPrefix(pending, written);
  }
  assert(writtenBytes === totalBytes, 'writeAll wrote more than asked');
  return writtenBytes;
}

function dropPrefix(buffers: readonly Uint8Array[], sizeBytes: number): Uint8Array[] {
  const rest: Uint8Array[] = [];
  let skip = sizeBytes;
  for (const buffer of buffers) {
    if (skip >= buffer.length) {
      skip -= buffer.length;
    } else {
      rest.push(skip === 0 ? buffer : buffer.subarray(skip));
      skip = 0;
    }
  }
  return rest;
}

/** Fills `buffer` from `position`, looping over short reads; returns the bytes read. */
export async function readAll(
  handle: FileHandleLike,
  buffer: Uint8Array,
  position: number,
): Promise<number> {
  let readBytes = 0;
  while (readBytes < buffer.length) {
    const read = await handle.read(buffer.subarray(readBytes), position + readBytes);
    if (read === 0) break;
    readBytes += read;
  }
  return readBytes;
}
