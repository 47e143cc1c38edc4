// Journal segment files as files: where they live, how one is created durably, and which exist.
//
// Invariants: a segment file is created exclusively (never over an existing one), its header is
// written and datasynced, and then the journal directory is fsynced, so a segment that a later
// record lands in can never vanish in a crash; nothing here rewrites or truncates a segment.

import { join } from 'node:path';

import { assert } from '../core/assert.js';
import { writeAll } from './file_io.js';
import type { FileHandleLike, FileIO } from './file_io.js';
import { encodeSegmentHeader, parseSegmentFileName, segmentFileName } from './segment_header.js';
import type { SegmentHeader } from './segment_header.js';

/** The journal's directory inside a data directory. */
export const journalDirName = 'journal';

export function journalDirOf(dataDir: string): string {
  return join(dataDir, journalDirName);
}

export function segmentPath(journalDir: string, segmentIndex: number): string {
  return join(journalDir, segmentFileName(segmentIndex));
}

/** The indexes of the segment files present, ascending. Other names are ignored. */
export async function listSegmentIndexes(io: FileIO, journalDir: string): Promise<number[]> {
  const indexes: number[] = [];
  for (const name of await io.readdir(journalDir)) {
    const index = parseSegmentFileName(name);
    if (index !== null) indexes.push(index);
  }
  return indexes.sort((a, b) => a - b);
}

/** Creates a segment with its header, durably (file datasynced, directory fsynced). */
export async function createSegmentFile(
  io: FileIO,
  journalDir: string,
  header: SegmentHeader,
): Promise<FileHandleLike> {
  const bytes = encodeSegmentHeader(header);
  const handle = await io.open(segmentPath(journalDir, header.segmentIndex), 'create');
  try {
    const written = await writeAll(handle, [bytes], 0);
    assert(written === bytes.length, 'segment header written whole');
    await handle.datasync();
    await io.fsyncDir(journalDir);
  } catch (error) {
    await handle.close().catch(() => undefined); // The first error is the one to report.
    throw error;
  }
  return handle;
}
