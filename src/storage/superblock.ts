// The superblock: <dataDir>/superblock.kmb, the small record of who this replica is and where
// it stands (cluster, replica index, view, log view, commit). The file holds
// constants.superblockCopyCount copies of constants.superblockCopySizeBytes bytes each
// (superblock_copy.ts); the valid copy with the highest sequence wins at open.
//
// Crash safety of write(): the copies are written in two groups, each followed by a datasync,
// and the copies that already hold the current state are written last. So while the first group
// is being written, a copy of the current state survives untouched in the second group; and
// while the second group is being written, the first group already holds the new state durably.
// A crash therefore leaves the old state or the new one, never neither. create() writes a
// temporary file, datasyncs it, renames it into place and fsyncs the directory, so a crash
// leaves no superblock (a fresh data dir) or a whole one.
//
// A full disk. write() overwrites bytes the file already holds, so on most filesystems it needs
// no new blocks; a copy-on-write filesystem (btrfs, ZFS) or thin provisioning may still answer
// ENOSPC or EDQUOT. That is a wait, as in the journal (space_wait.ts): the group's copies are
// written again, whole, and datasynced, every fullRetryIntervalMs, until it succeeds (`full`
// meanwhile). Retrying a group keeps the crash-safety argument above: the other group is not
// touched.
//
// Invariants: the sequence only grows; the cluster never changes; view, log view and commit
// never go backwards (asserted: going back is a programmer error); after a failed write (other
// than a full disk) the superblock refuses further writes (KMB_ERR_STORAGE_IO), as the journal
// does.

import { join } from 'node:path';

import { assert } from '../core/assert.js';
import { constants } from '../core/constants.js';
import { kmbError } from '../core/errors.js';
import type { KmbError } from '../core/errors.js';
import { isNoSpaceError, readAll, realFileIO, writeAll } from './file_io.js';
import type { FileHandleLike, FileIO } from './file_io.js';
import { corruptionError, ioError, withIoErrors } from './storage_errors.js';
import { SpaceWait } from './space_wait.js';
import { clientSessionCountUnrecorded, decodeCopy, encodeCopy } from './superblock_copy.js';
import { stateEqual, stateProblem } from './superblock_copy.js';
import type { CopyDecoding, SuperblockState } from './superblock_copy.js';

export type { SuperblockState } from './superblock_copy.js';

export const superblockFileName = 'superblock.kmb';
const temporarySuffix = '.tmp';
/** What create() writes before renaming it into place; left over only by a crash during it. */
export const superblockTemporaryFileName = superblockFileName + temporarySuffix;

export interface SuperblockCopyReport {
  readonly index: number;
  readonly valid: boolean;
  /** The copy's sequence, when valid. */
  readonly sequence: number | null;
  /** Why the copy is invalid, or null. */
  readonly problem: string | null;
  /** Valid and holding the newest state. */
  readonly current: boolean;
}

export interface SuperblockReport {
  readonly copies: readonly SuperblockCopyReport[];
  readonly validCount: number;
  /** The newest valid sequence (0 when no copy is valid). */
  readonly sequence: number;
}

/** What is in a superblock file, read without changing anything (used by open and verify). */
export interface SuperblockReading {
  readonly path: string;
  readonly fileSizeBytes: number;
  readonly report: SuperblockReport;
  /** The newest valid copy's state, or null when no copy is valid. */
  readonly state: SuperblockState | null;
}

export function superblockPath(dataDir: string): string {
  return join(dataDir, superblockFileName);
}

/** Reads and checks every copy; null when there is no superblock file. Never writes. */
export async function readSuperblock(
  dataDir: string,
  io: FileIO = realFileIO,
): Promise<SuperblockReading | null> {
  const path = superblockPath(dataDir);
  const stat = await io.stat(path);
  if (stat === null) return null;
  const bytes = new Uint8Array(constants.superblockCopyCount * constants.superblockCopySizeBytes);
  const handle = await io.open(path, 'read');
  let readBytes: number;
  try {
    readBytes = await readAll(handle, bytes, 0);
  } finally {
    await handle.close();
  }
  const decodings: CopyDecoding[] = [];
  for (let index = 0; index < constants.superblockCopyCount; index++) {
    const start = index * constants.superblockCopySizeBytes;
    const end = Math.min(start + constants.superblockCopySizeBytes, readBytes);
    decodings.push(decodeCopy(bytes.subarray(start, Math.max(start, end)), index));
  }
  let newest: { sequence: number; state: SuperblockState } | null = null;
  for (const decoding of decodings) {
    if (decoding.ok && (newest === null || decoding.sequence > newest.sequence)) newest = decoding;
  }
  const copies = decodings.map((decoding, index): SuperblockCopyReport => {
    if (!decoding.ok) {
      return { index, valid: false, sequence: null, problem: decoding.problem, current: false };
    }
    const current =
      newest !== null &&
      decoding.sequence === newest.sequence &&
      stateEqual(decoding.state, newest.state);
    return { index, valid: true, sequence: decoding.sequence, problem: null, current };
  });
  const validCount = copies.filter((copy) => copy.valid).length;
  const report = { copies, validCount, sequence: newest?.sequence ?? 0 };
  return { path, fileSizeBytes: stat.sizeBytes, report, state: newest?.state ?? null };
}

export class Superblock {
  private stateValue: SuperblockState;
  private sequenceValue: number;
  /** Copies known to hold the current state; written last by the next write. */
  private current: boolean[];
  private writes: Promise<void> = Promise.resolve();
  private failure: KmbError | null = null;
  /** How often a write stopped by a full disk is tried again (tests shorten it). */
  fullRetryIntervalMs: number = constants.diskFullRetryIntervalMs;
  /** Told when a write starts waiting for space (true, with the error) and when it resumes. */
  onFull: (full: boolean, error: unknown) => void = () => undefined;
  private readonly spaceWait = new SpaceWait({
    onFull: (full, error) => this.onFull(full, error),
    retryIntervalMs: () => this.fullRetryIntervalMs,
  });

  private constructor(
    private readonly dataDir: string,
    private readonly io: FileIO,
    state: SuperblockState,
    sequence: number,
    /** What open found (for create: every copy valid). */
    readonly report: SuperblockReport,
  ) {
    this.stateValue = state;
    this.sequenceValue = sequence;
    this.current = report.copies.map((copy) => copy.current);
  }

  /**
   * Opens the superblock of `dir`: null when there is none (a fresh data dir); throws
   * KMB_ERR_STORAGE_CORRUPT when the file exists but no copy is valid.
   */
  static async open(dir: string, io: FileIO = realFileIO): Promise<Superblock | null> {
    const reading = await withIoErrors(`reading the superblock of ${dir}`, () =>
      readSuperblock(dir, io),
    );
    if (reading === null) return null;
    if (reading.state === null) {
      const details = reading.report.copies.map((copy) => `copy ${copy.index}: ${copy.problem}`);
      const problem = `no valid superblock copy (${details.join('; ')})`;
      throw corruptionError(dir, { file: reading.path, position: 0, op: null, problem });
    }
    return new Superblock(dir, io, reading.state, reading.report.sequence, reading.report);
  }

  /** Creates the superblock of a fresh data dir (sequence 1), durably. */
  static async create(
    dir: string,
    state: SuperblockState,
    io: FileIO = realFileIO,
  ): Promise<Superblock> {
    const problem = stateProblem(state);
    assert(problem === null, `superblock state: ${problem}`);
    const path = superblockPath(dir);
    const temporaryPath = path + temporarySuffix;
    await withIoErrors(`creating the superblock ${path}`, async () => {
      await io.mkdir(dir, { recursive: true });
      if ((await io.stat(path)) !== null) {
        throw kmbError('storage_io', `${path} already exists; refusing to overwrite it`);
      }
      if ((await io.stat(temporaryPath)) !== null) await io.unlink(temporaryPath);
      const handle = await io.open(temporaryPath, 'create');
      try {
        const copies = allCopyIndexes().map((index) => encodeCopy(index, 1, state));
        await writeAll(handle, copies, 0);
        await handle.datasync();
      } finally {
        await handle.close();
      }
      await io.rename(temporaryPath, path);
      await io.fsyncDir(dir);
    });
    const copies = allCopyIndexes().map((index) => ({
      index,
      valid: true,
      sequence: 1,
      problem: null,
      current: true,
    }));
    const report = { copies, validCount: copies.length, sequence: 1 };
    return new Superblock(dir, io, state, 1, report);
  }

  get state(): SuperblockState {
    return this.stateValue;
  }

  get sequence(): number {
    return this.sequenceValue;
  }

  /**
   * Stores a new state (the current one with `update` applied) under the next sequence, in every
   * copy, durably. Writes are serialised: a write starts after the previous one finished.
   */
  write(update: Partial<SuperblockState>): Promise<void> {
    const next = this.writes.then(() => this.writeNow(update));
    this.writes = next.catch(() => undefined);
    return next;
  }

  private async writeNow(update: Partial<SuperblockState>): Promise<void> {
    if (this.failure !== null) {
      throw kmbError('storage_io', `superblock refuses: ${this.failure.message}`, this.failure);
    }
    const state = nextState(this.stateValue, update);
    const sequence = this.sequenceValue + 1;
    const path = superblockPath(this.dataDir);
    try {
      const handle = await this.io.open(path, 'readwrite');
      try {
        for (const group of this.writeGroups()) {
          await this.writeGroupDurably(handle, group, sequence, state);
        }
      } finally {
        await handle.close();
      }
    } catch (error) {
      this.failure = ioError(`writing the superblock ${path}`, error);
      throw this.failure;
    }
    this.stateValue = state;
    this.sequenceValue = sequence;
    this.current = this.current.map(() => true);
  }

  /** True while a write waits for space on a full disk. */
  get full(): boolean {
    return this.spaceWait.full;
  }

  /** Writes one group until its datasync succeeds, waiting while the disk is full. */
  private async writeGroupDurably(
    handle: FileHandleLike,
    group: readonly number[],
    sequence: number,
    state: SuperblockState,
  ): Promise<void> {
    for (;;) {
      try {
        await writeGroup(handle, group, sequence, state);
        this.spaceWait.leave();
        return;
      } catch (error) {
        if (!isNoSpaceError(error)) throw error;
        this.spaceWait.enter(error);
        await this.spaceWait.wait();
      }
    }
  }

  /** Two groups of copy indexes: stale copies first, copies of the current state last. */
  private writeGroups(): number[][] {
    const stale = allCopyIndexes().filter((index) => this.current[index] !== true);
    const current = allCopyIndexes().filter((index) => this.current[index] === true);
    assert(current.length > 0, 'some copy holds the current state');
    const order = [...stale, ...current];
    const firstCount = Math.floor(order.length / 2);
    return [order.slice(0, firstCount), order.slice(firstCount)];
  }
}

function allCopyIndexes(): number[] {
  return Array.from({ length: constants.superblockCopyCount }, (_, index) => index);
}

async function writeGroup(
  handle: FileHandleLike,
  group: readonly number[],
  sequence: number,
  state: SuperblockState,
): Promise<void> {
  for (const index of group) {
    const bytes = encodeCopy(index, sequence, state);
    await writeAll(handle, [bytes], index * constants.superblockCopySizeBytes);
  }
  await handle.datasync();
}

function nextState(state: SuperblockState, update: Partial<SuperblockState>): SuperblockState {
  const next: SuperblockState = { ...state, ...update };
  assert(next.cluster === state.cluster, 'the cluster id never changes');
  assert(next.clusterName === state.clusterName, 'the cluster name never changes');
  assert(next.view >= state.view, 'the view never goes back');
  assert(next.logView >= state.logView, 'the log view never goes back');
  assert(next.commit >= state.commit, 'the commit number never goes back');
  // The bound is fixed once recorded; a superblock from before the field records it once.
  if (state.clientSessionCountMax !== clientSessionCountUnrecorded) {
    assert(
      next.clientSessionCountMax === state.clientSessionCountMax,
      'the session bound is fixed',
    );
  }
  const problem = stateProblem(next);
  assert(problem === null, `superblock state: ${problem}`);
  return next;
}
