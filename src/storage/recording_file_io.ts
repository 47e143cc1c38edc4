// A FileIO for tests: it passes every call through to an inner FileIO (usually realFileIO),
// records each one in order in `events`, and can inject a failure into writes or syncs. Tests
// use it to prove orderings (a write is followed by a datasync before an append resolves), to
// prove that verify never writes, and to prove how the journal behaves when a sync fails.
//
// Invariants: an event is recorded when the inner call has completed (so 'datasync' in the log
// means the datasync returned), except '…_start' events, recorded before the call begins.
// `mark` lets a test put its own events (an append resolving) into the same ordered log.

import type { FileHandleLike, FileIO, FileStat, OpenMode } from './file_io.js';

export type RecordedKind =
  | 'open'
  | 'write'
  | 'read'
  | 'datasync_start'
  | 'datasync'
  | 'sync'
  | 'truncate'
  | 'close'
  | 'mkdir'
  | 'unlink'
  | 'rename'
  | 'fsync_dir'
  | 'mark';

export interface RecordedEvent {
  readonly kind: RecordedKind;
  readonly path: string;
  /** For write, read and truncate: the file position (or new size). */
  readonly position?: number;
  /** For write and read: bytes transferred. */
  readonly sizeBytes?: number;
  /**
   * For open: the mode. For rename: the source path. For mark: the label. For a write of
   * nothing but zero bytes (free space): 'zeros'.
   */
  readonly detail?: string;
}

/** Hooks that may return an Error to make the named call fail instead of reaching the disk. */
export interface FaultHooks {
  write?: (path: string, buffers: readonly Uint8Array[]) => Error | undefined;
  datasync?: (path: string) => Error | undefined;
  fsyncDir?: (path: string) => Error | undefined;
}

export class RecordingFileIO implements FileIO {
  readonly events: RecordedEvent[] = [];
  faults: FaultHooks = {};

  constructor(private readonly inner: FileIO) {}

  record(event: RecordedEvent): void {
    this.events.push(event);
  }

  mark(label: string): void {
    this.record({ kind: 'mark', path: '', detail: label });
  }

  clear(): void {
    this.events.length = 0;
  }

  count(kind: RecordedKind): number {
    return this.events.filter((event) => event.kind === kind).length;
  }

  async open(path: string, mode: OpenMode): Promise<FileHandleLike> {
    const handle = await this.inner.open(path, mode);
    this.record({ kind: 'open', path, detail: mode });
    return new RecordingHandle(this, path, handle);
  }

  readdir(dirPath: string): Promise<string[]> {
    return this.inner.readdir(dirPath);
  }

  async mkdir(dirPath: string, options: { recursive: boolean }): Promise<void> {
    await this.inner.mkdir(dirPath, options);
    this.record({ kind: 'mkdir', path: dirPath });
  }

  stat(path: string): Promise<FileStat | null> {
    return this.inner.stat(path);
  }

  async unlink(path: string): Promise<void> {
    await this.inner.unlink(path);
    this.record({ kind: 'unlink', path });
  }

  async rename(fromPath: string, toPath: string): Promise<void> {
    await this.inner.rename(fromPath, toPath);
    this.record({ kind: 'rename', path: toPath, detail: fromPath });
  }

  async fsyncDir(dirPath: string): Promise<void> {
    const fault = this.faults.fsyncDir?.(dirPath);
    if (fault !== undefined) throw fault;
    await this.inner.fsyncDir(dirPath);
    this.record({ kind: 'fsync_dir', path: dirPath });
  }
}

class RecordingHandle implements FileHandleLike {
  constructor(
    private readonly io: RecordingFileIO,
    private readonly path: string,
    private readonly inner: FileHandleLike,
  ) {}

  async write(buffers: readonly Uint8Array[], position: number): Promise<number> {
    const fault = this.io.faults.write?.(this.path, buffers);
    if (fault !== undefined) throw fault;
    const written = await this.inner.write(buffers, position);
    const zeros = buffers.every((buffer) => buffer.every((byte) => byte === 0));
    this.io.record({
      kind: 'write',
      path: this.path,
      position,
      sizeBytes: written,
      ...(zeros ? { detail: 'zeros' } : {}),
    });
    return written;
  }

  async read(buffer: Uint8Array, position: number): Promise<number> {
    const read = await this.inner.read(buffer, position);
    this.io.record({ kind: 'read', path: this.path, position, sizeBytes: read });
    return read;
  }

  async datasync(): Promise<void> {
    this.io.record({ kind: 'datasync_start', path: this.path });
    const fault = this.io.faults.datasync?.(this.path);
    if (fault !== undefined) throw fault;
    await this.inner.datasync();
    this.io.record({ kind: 'datasync', path: this.path });
  }

  async sync(): Promise<void> {
    await this.inner.sync();
    this.io.record({ kind: 'sync', path: this.path });
  }

  async truncate(sizeBytes: number): Promise<void> {
    await this.inner.truncate(sizeBytes);
    this.io.record({ kind: 'truncate', path: this.path, position: sizeBytes });
  }

  size(): Promise<number> {
    return this.inner.size();
  }

  async close(): Promise<void> {
    await this.inner.close();
    this.io.record({ kind: 'close', path: this.path });
  }
}
