// Recovering the journal at open: scan every segment in order (journal_scan.ts decides what is
// valid, torn or corrupt), build the op index, cut a torn tail off the last segment, and leave
// the last segment open for appending.
//
// The last segment may end in free space (zeros the journal laid down ahead of its writes; see
// journal_scan.ts): it is left in place, and the segment's size is where its records end.
//
// The commit floor. Ops up to `commitFloor` (the superblock's commit) are committed: a journal
// that ends below it lost acknowledged records (a deleted or cut-short segment, a deleted journal
// directory), which no torn write can explain. With `onCorruption: 'refuse'` that throws
// CommittedRecordsMissingError (data_dir_rules.ts, the words verify uses) before anything is
// changed, even a torn tail below the floor is left in place; with `cut` the journal opens as it
// is and the caller, seeing opMax below its commit, restarts the replica as not intact.
//
// Invariants: the only changes ever made here are (1) creating the journal directory and the
// first segment when there is none, (2) truncating a provable torn tail of the last segment to
// the end of its last valid record (then datasync), (3) removing a last segment whose own header
// is torn (then fsync the directory). Any corruption throws KMB_ERR_STORAGE_CORRUPT before
// anything is changed: scanning finishes before the truncation, and the commit floor is checked
// before any of (1)-(3).

import { assert } from '../core/assert.js';
import type { KmbError } from '../core/errors.js';
import { rootPrepare } from '../core/header.js';
import { committedRecordsMissing } from './data_dir_rules.js';
import type { FileHandleLike, FileIO } from './file_io.js';
import { newChain, scanSegment } from './journal_scan.js';
import type { ChainState, ScanProblem, TornReason, TornTail } from './journal_scan.js';
import { OpIndex } from './op_index.js';
import { corruptionError } from './storage_errors.js';
import { segmentHeaderSizeBytes } from './segment_header.js';
import { segmentFileName } from './segment_header.js';
import { createSegmentFile, listSegmentIndexes, segmentPath } from './segment_file.js';

export interface TruncatedTail {
  /** The segment file name (e.g. 00000003.kjl). */
  readonly segment: string;
  readonly position: number;
  readonly bytesTruncated: number;
  readonly reason: TornReason | 'corruption';
  /** The op of the torn record, when its header could be read. */
  readonly op: number | null;
}

export interface RecoveredJournal {
  readonly index: OpIndex;
  readonly headChecksum: Uint8Array;
  /** Bytes of every segment up to the end of its last record, by segment index. */
  readonly segmentSizesBytes: number[];
  /** The last segment's file size: its records plus any free space after them. */
  readonly tailFileSizeBytes: number;
  readonly truncated: TruncatedTail | null;
  /** The last segment, open for reading and writing. */
  readonly tailHandle: FileHandleLike;
  /** Bytes written while recovering (a first segment's header), and syncs issued. */
  readonly bytesWritten: number;
  readonly syncCount: number;
}

interface RecoverContext {
  readonly io: FileIO;
  readonly dataDir: string;
  readonly journalDir: string;
  readonly cluster: number;
  /**
   * What to do with corruption before the tail. `refuse` (a single replica: nothing to repair
   * from) throws KMB_ERR_STORAGE_CORRUPT. `cut` (a replica with peers) truncates the journal at
   * the first bad record and drops every later segment, reporting it in `truncated` with reason
   * 'corruption': the replica then restarts as not intact, votes in no view change, and fetches
   * the cut ops again from its peers, which hold every committed op.
   */
  readonly onCorruption: 'refuse' | 'cut';
  /** Ops 1..commitFloor are committed and must be held (see "The commit floor"); 0: none. */
  readonly commitFloor: number;
}

/** Refuses (refuse mode) a journal that would end below the commit floor, before any change. */
function checkCommitFloor(context: RecoverContext, opMax: number): void {
  if (context.onCorruption !== 'refuse') return;
  const refusal = committedRecordsMissing(context.dataDir, context.commitFloor, opMax);
  if (refusal !== null) throw refusal;
}

export async function recoverJournal(context: RecoverContext): Promise<RecoveredJournal> {
  const { io, journalDir } = context;
  assert(Number.isSafeInteger(context.commitFloor) && context.commitFloor >= 0, 'commit floor');
  let syncCount = 0;
  if ((await io.stat(journalDir)) === null) {
    checkCommitFloor(context, 0);
    await io.mkdir(journalDir, { recursive: true });
    await io.fsyncDir(context.dataDir);
    syncCount += 1;
  }
  const indexes = await listSegmentIndexes(io, journalDir);
  indexes.forEach((segment, position) => {
    if (segment !== position) throw missingSegment(context, position);
  });
  const index = new OpIndex();
  const chain: ChainState = newChain(context.cluster);
  const segmentSizesBytes: number[] = [];
  let truncated: TruncatedTail | null = null;
  for (const segment of indexes) {
    const isLast = segment === indexes.length - 1;
    const scanned = await scanOne(context, { segment, isLast, index, chain });
    if (scanned.problem !== null) {
      syncCount += 2;
      const { cut, sizeBytes } = await cutAtCorruption(context, indexes, segment, scanned.problem);
      truncated = cut;
      if (sizeBytes === null) index.dropEmptyLastSegment();
      else segmentSizesBytes.push(sizeBytes);
      break;
    }
    if (scanned.torn === null) {
      segmentSizesBytes.push(scanned.sizeBytes);
      continue;
    }
    checkCommitFloor(context, index.opMax);
    syncCount += 1;
    truncated = await cutTornTail(context, segment, scanned.torn);
    if (scanned.torn.removeSegment) index.dropEmptyLastSegment();
    else segmentSizesBytes.push(scanned.torn.position);
  }
  checkCommitFloor(context, index.opMax);
  const tail = await openTail(context, index, segmentSizesBytes);
  const headChecksum = chain.parent ?? rootPrepare(context.cluster).header.checksum;
  assert(chain.opNext === index.opMax + 1, 'the chain ends at the last indexed op');
  return {
    index,
    headChecksum,
    segmentSizesBytes,
    truncated,
    tailHandle: tail.handle,
    tailFileSizeBytes: tail.fileSizeBytes,
    bytesWritten: tail.bytesWritten,
    syncCount: syncCount + tail.syncCount,
  };
}

function missingSegment(context: RecoverContext, segment: number): KmbError {
  const file = segmentPath(context.journalDir, segment);
  const problem = 'segment file is missing, but later segments exist';
  return corruptionError(context.dataDir, { file, position: 0, op: null, problem });
}

async function scanOne(
  context: RecoverContext,
  target: { segment: number; isLast: boolean; index: OpIndex; chain: ChainState },
): Promise<{ sizeBytes: number; torn: TornTail | null; problem: ScanProblem | null }> {
  const { segment, isLast, index } = target;
  const path = segmentPath(context.journalDir, segment);
  const handle = await context.io.open(path, 'read');
  try {
    const fileSizeBytes = await handle.size();
    const problems: ScanProblem[] = [];
    index.addSegment(index.opMax + 1);
    const scan = await scanSegment({
      handle,
      fileSizeBytes,
      segmentIndex: segment,
      isLast,
      chain: target.chain,
      continueAfterProblem: false,
      onRecord: (record) => index.push(record.position, record.sizeBytes),
      onProblem: (problem) => problems.push(problem),
    });
    const problem = problems[0];
    if (problem !== undefined && context.onCorruption === 'cut') {
      return { sizeBytes: fileSizeBytes, torn: null, problem };
    }
    if (problem !== undefined) throw corruptionError(context.dataDir, { file: path, ...problem });
    if (scan.torn === null) {
      assert(scan.endPosition + scan.freeBytes === fileSizeBytes, 'scan reached the end');
      assert(isLast || scan.freeBytes === 0, 'only the last segment has free space');
    }
    return { sizeBytes: scan.endPosition, torn: scan.torn, problem: null };
  } finally {
    await handle.close();
  }
}

async function cutTornTail(
  context: RecoverContext,
  segment: number,
  torn: TornTail,
): Promise<TruncatedTail> {
  const path = segmentPath(context.journalDir, segment);
  if (torn.removeSegment) {
    await context.io.unlink(path);
    await context.io.fsyncDir(context.journalDir);
  } else {
    assert(torn.position >= segmentHeaderSizeBytes, 'a torn record follows the segment header');
    const handle = await context.io.open(path, 'readwrite');
    try {
      await handle.truncate(torn.position);
      await handle.datasync();
    } finally {
      await handle.close();
    }
  }
  const { position, bytesTruncated, reason, op } = torn;
  return { segment: segmentFileName(segment), position, bytesTruncated, reason, op };
}

/**
 * Cuts the journal at a corrupt record: truncates its segment there (or removes the segment when
 * its own header is bad) and removes every later segment, each step made durable.
 */
async function cutAtCorruption(
  context: RecoverContext,
  indexes: readonly number[],
  segment: number,
  problem: ScanProblem,
): Promise<{ cut: TruncatedTail; sizeBytes: number | null }> {
  const path = segmentPath(context.journalDir, segment);
  const handle = await context.io.open(path, 'readwrite');
  const fileSizeBytes = await handle.size();
  let sizeBytes: number | null = problem.position;
  try {
    if (problem.position < segmentHeaderSizeBytes) sizeBytes = null;
    else {
      await handle.truncate(problem.position);
      await handle.datasync();
    }
  } finally {
    await handle.close();
  }
  let bytesTruncated = fileSizeBytes - (sizeBytes ?? 0);
  if (sizeBytes === null) await context.io.unlink(path);
  for (const later of indexes.filter((i) => i > segment)) {
    const laterPath = segmentPath(context.journalDir, later);
    bytesTruncated += (await context.io.stat(laterPath))?.sizeBytes ?? 0;
    await context.io.unlink(laterPath);
  }
  await context.io.fsyncDir(context.journalDir);
  const cut: TruncatedTail = {
    segment: segmentFileName(segment),
    position: problem.position,
    bytesTruncated,
    reason: 'corruption',
    op: problem.op,
  };
  return { cut, sizeBytes };
}

async function openTail(
  context: RecoverContext,
  index: OpIndex,
  segmentSizesBytes: number[],
): Promise<{
  handle: FileHandleLike;
  fileSizeBytes: number;
  bytesWritten: number;
  syncCount: number;
}> {
  if (index.segmentCount === 0) {
    const header = { cluster: context.cluster, segmentIndex: 0, opFirst: 1 };
    const handle = await createSegmentFile(context.io, context.journalDir, header);
    index.addSegment(1);
    segmentSizesBytes.push(segmentHeaderSizeBytes);
    const fileSizeBytes = segmentHeaderSizeBytes;
    return { handle, fileSizeBytes, bytesWritten: segmentHeaderSizeBytes, syncCount: 2 };
  }
  const path = segmentPath(context.journalDir, index.segmentCount - 1);
  const handle = await context.io.open(path, 'readwrite');
  const fileSizeBytes = await handle.size();
  return { handle, fileSizeBytes, bytesWritten: 0, syncCount: 0 };
}
