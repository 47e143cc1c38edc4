// Reading a stopped server's journal files from the test's side, to aim damage precisely: where
// each record starts, how long it is, its op, and which events it appended. The layout is the
// one DESIGN §4 and src/storage/journal.ts describe: segment files
// <data-dir>/journal/NNNNNNNN.kjl, each a 64-byte segment header followed by records back to
// back, a record being a 160-byte prepare header (src/core/header.ts) and its body (a batch of
// requests, src/vsr/batch.ts). The last segment may end in free space: zeros from the end of its
// last record to end of file, which the journal lays down ahead of its writes.

import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { decodeHeader, headerSizeBytes } from '../src/core/header.js';
import { decodeCommand } from '../src/kernel/kernel.js';
import { segmentHeaderSizeBytes } from '../src/storage/segment_header.js';
import { decodeBatch } from '../src/vsr/batch.js';

export interface JournalRecord {
  /** The segment file name, e.g. 00000000.kjl. */
  readonly segment: string;
  readonly path: string;
  /** Byte position of the record in its segment file. */
  readonly position: number;
  readonly sizeBytes: number;
  readonly bodySizeBytes: number;
  readonly op: number;
  /** The data of the events this record appended, as text, in order. */
  readonly events: readonly string[];
}

export function journalDir(dataDir: string): string {
  return join(dataDir, 'journal');
}

/** Segment file names in order. */
export async function segmentFiles(dataDir: string): Promise<string[]> {
  const names = await readdir(journalDir(dataDir));
  return names.filter((name) => /^\d{8}\.kjl$/.test(name)).sort();
}

function appendedEvents(body: Uint8Array): string[] {
  const events: string[] = [];
  for (const request of decodeBatch(body)) {
    if (request.operation !== 'command') continue;
    const command = decodeCommand(request.body);
    if (command.kind !== 'append') continue;
    for (const data of command.events) events.push(Buffer.from(data).toString('utf8'));
  }
  return events;
}

function allZero(bytes: Uint8Array): boolean {
  for (const byte of bytes) if (byte !== 0) return false;
  return true;
}

/** Bytes of records (and segment headers) in every segment: the files without free space. */
export async function journalRecordBytes(dataDir: string): Promise<number> {
  const records = await readJournal(dataDir);
  let total = 0;
  for (const segment of await segmentFiles(dataDir)) {
    const last = records.filter((record) => record.segment === segment).at(-1);
    total += last === undefined ? segmentHeaderSizeBytes : last.position + last.sizeBytes;
  }
  return total;
}

/**
 * Every record of every segment, up to the free space of the last; throws on anything else
 * that does not decode (an intact journal).
 */
export async function readJournal(dataDir: string): Promise<JournalRecord[]> {
  const records: JournalRecord[] = [];
  for (const segment of await segmentFiles(dataDir)) {
    const path = join(journalDir(dataDir), segment);
    const bytes = await readFile(path);
    let position = segmentHeaderSizeBytes;
    while (position < bytes.length) {
      if (allZero(bytes.subarray(position))) break; // Free space.
      const decoded = decodeHeader(bytes.subarray(position));
      if (!decoded.ok) throw new Error(`${segment} at ${position}: ${decoded.problem}`);
      const { header } = decoded;
      const bodyStart = position + headerSizeBytes;
      const body = bytes.subarray(bodyStart, bodyStart + header.bodySizeBytes);
      const sizeBytes = headerSizeBytes + header.bodySizeBytes;
      const events = appendedEvents(body);
      const bodySizeBytes = header.bodySizeBytes;
      records.push({ segment, path, position, sizeBytes, bodySizeBytes, op: header.op, events });
      position += sizeBytes;
    }
  }
  return records;
}
