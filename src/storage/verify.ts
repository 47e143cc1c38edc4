// Verification of a data directory, for `kimberlite-admin verify --data-dir DIR` (DESIGN §4):
// every superblock copy, every segment header, every record (header checksum, body checksum,
// cluster, op sequence, the hash chain across segments), and the superblock's commit against
// the journal. Record bodies are checked against their checksums but never decoded: replaying
// the kernel is the CLI's separate step.
//
// The superblock and the journal are judged against each other by the rules of
// data_dir_rules.ts, which start-up applies too, in the same words: a superblock commit beyond the
// journal's last valid op, a superblock without a journal directory, segment files without a
// superblock.
//
// Invariants: strictly read-only — files are opened 'read' and nothing is truncated, created or
// written, even for a torn tail (reported as a warning: start-up would truncate it). Records are
// judged by the same scanner as Journal.open (journal_scan.ts), so verify and start-up always
// agree on what is valid, torn or corrupt. Verify does not stop at the first problem: after a bad
// record it goes on through the record when its header is sound, or resumes at the next valid
// record, and it always goes on to the next segment. Problems kept are bounded; the rest are
// counted.

import { toHex } from '../core/checksum.js';
import { constants } from '../core/constants.js';
import { rootPrepare } from '../core/header.js';
import { realFileIO } from './file_io.js';
import type { FileIO } from './file_io.js';
import {
  commitBeyondJournalProblem,
  journalDirMissingProblem,
  superblockMissingProblem,
} from './data_dir_rules.js';
import { newChain, scanSegment } from './journal_scan.js';
import type { ChainState, SegmentScan, TornReason } from './journal_scan.js';
import { journalDirName, journalDirOf, listSegmentIndexes, segmentPath } from './segment_file.js';
import { segmentFileName } from './segment_header.js';
import { readSuperblock, superblockFileName } from './superblock.js';
import type { SuperblockCopyReport, SuperblockState } from './superblock.js';

export { formatVerifyReport } from './verify_format.js';

/** Problems kept in a report; more are only counted. */
export const verifyProblemCountMax = 1000;
/** Warnings kept in a report; more are only counted. */
export const verifyWarningCountMax = 100;

export interface VerifyProblem {
  /** The file: a segment file name, `superblock.kmb`, or `journal/` for the directory. */
  readonly segment: string;
  readonly position: number;
  readonly op: number | null;
  readonly problem: string;
}

export interface VerifySuperblockReport {
  readonly present: boolean;
  readonly copyCount: number;
  readonly validCount: number;
  /** The newest valid sequence, or null when no copy is valid. */
  readonly sequence: number | null;
  readonly cluster: number | null;
  readonly state: SuperblockState | null;
  readonly copies: readonly SuperblockCopyReport[];
}

export interface VerifySegmentReport {
  readonly name: string;
  readonly index: number;
  readonly sizeBytes: number;
  /** Zero bytes after the last record (free space the journal laid down; last segment only). */
  readonly freeBytes: number;
  readonly headerOk: boolean;
  readonly opFirst: number | null;
  readonly opLast: number | null;
  readonly recordCount: number;
}

export interface VerifyTornTail {
  readonly segment: string;
  readonly position: number;
  readonly bytes: number;
  readonly reason: TornReason;
  readonly op: number | null;
}

export interface VerifyReport {
  readonly ok: boolean;
  readonly dataDir: string;
  readonly superblock: VerifySuperblockReport;
  readonly segments: readonly VerifySegmentReport[];
  /** Valid records found. */
  readonly recordCount: number;
  /** The op of the last valid record (0 when none). */
  readonly opMax: number;
  /** Bytes in all segment files. */
  readonly sizeBytes: number;
  /** Hex checksum of the last valid record (of the root prepare when none; '' if unknown). */
  readonly headChecksum: string;
  /** A torn tail that start-up would truncate (also listed in warnings), or null. */
  readonly tornTail: VerifyTornTail | null;
  readonly problems: readonly VerifyProblem[];
  readonly problemsOmittedCount: number;
  readonly warnings: readonly string[];
  readonly warningsOmittedCount: number;
}

class Findings {
  readonly problems: VerifyProblem[] = [];
  readonly warnings: string[] = [];
  problemCount = 0;
  warningCount = 0;

  problem(problem: VerifyProblem): void {
    this.problemCount += 1;
    if (this.problems.length < verifyProblemCountMax) this.problems.push(problem);
  }

  warning(warning: string): void {
    this.warningCount += 1;
    if (this.warnings.length < verifyWarningCountMax) this.warnings.push(warning);
  }
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Checks everything in a data directory without changing anything. */
export async function verifyDataDir(dir: string, io: FileIO = realFileIO): Promise<VerifyReport> {
  const findings = new Findings();
  const dirStat = await io.stat(dir).catch(() => null);
  if (dirStat === null || !dirStat.isDirectory) {
    findings.problem({ segment: '', position: 0, op: null, problem: `${dir} is not a directory` });
  }
  const superblock = await verifySuperblock(dir, io, findings);
  const { dirPresent, ...journal } = await verifyJournal(dir, io, superblock, findings);
  crossCheck(superblock, journal, dirPresent, findings);
  return {
    ok: findings.problemCount === 0,
    dataDir: dir,
    superblock,
    ...journal,
    problems: findings.problems,
    problemsOmittedCount: findings.problemCount - findings.problems.length,
    warnings: findings.warnings,
    warningsOmittedCount: findings.warningCount - findings.warnings.length,
  };
}

const absentSuperblock: VerifySuperblockReport = {
  present: false,
  copyCount: 0,
  validCount: 0,
  sequence: null,
  cluster: null,
  state: null,
  copies: [],
};

async function verifySuperblock(
  dir: string,
  io: FileIO,
  findings: Findings,
): Promise<VerifySuperblockReport> {
  const at = { segment: superblockFileName, position: 0, op: null };
  let reading;
  try {
    reading = await readSuperblock(dir, io);
  } catch (error) {
    findings.problem({ ...at, problem: `cannot read the superblock: ${messageOf(error)}` });
    return absentSuperblock;
  }
  if (reading === null) return absentSuperblock;
  const { report, state } = reading;
  if (state === null) {
    findings.problem({ ...at, problem: 'no superblock copy is valid' });
  }
  for (const copy of report.copies) {
    const copyAt = { ...at, position: copy.index * constants.superblockCopySizeBytes };
    if (!copy.valid) {
      const text = `superblock copy ${copy.index} is invalid (${copy.problem})`;
      if (state === null) findings.problem({ ...copyAt, problem: text });
      else findings.warning(`${text}; the next superblock write rewrites it`);
    } else if (!copy.current) {
      findings.warning(
        `superblock copy ${copy.index} holds sequence ${copy.sequence}, older than ` +
          `${report.sequence} (an interrupted superblock write); the next write rewrites it`,
      );
    }
  }
  return {
    present: true,
    copyCount: report.copies.length,
    validCount: report.validCount,
    sequence: state === null ? null : report.sequence,
    cluster: state?.cluster ?? null,
    state,
    copies: report.copies,
  };
}

interface JournalFindings {
  segments: VerifySegmentReport[];
  recordCount: number;
  opMax: number;
  sizeBytes: number;
  headChecksum: string;
  tornTail: VerifyTornTail | null;
}

/** The journal's findings, and whether there is a journal directory at all. */
async function verifyJournal(
  dir: string,
  io: FileIO,
  superblock: VerifySuperblockReport,
  findings: Findings,
): Promise<JournalFindings & { dirPresent: boolean }> {
  const cluster = superblock.cluster;
  const journal: JournalFindings = {
    segments: [],
    recordCount: 0,
    opMax: 0,
    sizeBytes: 0,
    headChecksum: cluster === null ? '' : toHex(rootPrepare(cluster).header.checksum),
    tornTail: null,
  };
  const journalDir = journalDirOf(dir);
  const at = { segment: `${journalDirName}/`, position: 0, op: null };
  let indexes: number[];
  try {
    if ((await io.stat(journalDir)) === null) {
      const commit = superblock.state?.commit;
      if (commit === undefined) {
        findings.warning(`no journal directory in ${dir} (a fresh data directory)`);
      } else findings.problem({ ...at, problem: journalDirMissingProblem(commit) });
      return { ...journal, dirPresent: false };
    }
    indexes = await listSegmentIndexes(io, journalDir);
  } catch (error) {
    findings.problem({ ...at, problem: `cannot list the journal: ${messageOf(error)}` });
    return { ...journal, dirPresent: true };
  }
  const chain = newChain(cluster);
  const lastIndex = indexes[indexes.length - 1] ?? -1;
  let expected = 0;
  for (const index of indexes) {
    if (index !== expected) {
      reportMissing(expected, index, findings);
      chain.opNext = null;
      chain.parent = null;
    }
    expected = index + 1;
    await verifySegment(
      { io, journalDir, index, isLast: index === lastIndex, chain },
      journal,
      findings,
    );
  }
  return { ...journal, dirPresent: true };
}

function reportMissing(from: number, to: number, findings: Findings): void {
  for (let index = from; index < to; index++) {
    const problem = 'segment file is missing, but later segments exist';
    findings.problem({ segment: segmentFileName(index), position: 0, op: null, problem });
  }
}

async function verifySegment(
  target: { io: FileIO; journalDir: string; index: number; isLast: boolean; chain: ChainState },
  journal: JournalFindings,
  findings: Findings,
): Promise<void> {
  const name = segmentFileName(target.index);
  const report = (position: number, op: number | null, problem: string): void =>
    findings.problem({ segment: name, position, op, problem });
  let scan: SegmentScan;
  let sizeBytes = 0;
  try {
    const handle = await target.io.open(segmentPath(target.journalDir, target.index), 'read');
    try {
      sizeBytes = await handle.size();
      scan = await scanSegment({
        handle,
        fileSizeBytes: sizeBytes,
        segmentIndex: target.index,
        isLast: target.isLast,
        chain: target.chain,
        continueAfterProblem: true,
        onRecord: (record) => {
          journal.recordCount += 1;
          journal.opMax = record.header.op;
          journal.headChecksum = toHex(record.header.checksum);
        },
        onProblem: (problem) => report(problem.position, problem.op, problem.problem),
      });
    } finally {
      await handle.close();
    }
  } catch (error) {
    report(0, null, `cannot read the segment: ${messageOf(error)}`);
    target.chain.opNext = null;
    target.chain.parent = null;
    return;
  }
  journal.sizeBytes += sizeBytes;
  journal.segments.push(segmentReport(name, target.index, sizeBytes, scan));
  if (scan.torn !== null) noteTornTail(name, scan, journal, findings);
}

function segmentReport(
  name: string,
  index: number,
  sizeBytes: number,
  scan: SegmentScan,
): VerifySegmentReport {
  const headerOk = scan.header !== null && (scan.torn === null || !scan.torn.removeSegment);
  return {
    name,
    index,
    sizeBytes,
    freeBytes: scan.freeBytes,
    headerOk,
    opFirst: scan.opFirst,
    opLast: scan.opLast,
    recordCount: scan.recordCount,
  };
}

function noteTornTail(
  name: string,
  scan: SegmentScan,
  journal: JournalFindings,
  findings: Findings,
): void {
  const torn = scan.torn;
  if (torn === null) return;
  journal.tornTail = {
    segment: name,
    position: torn.position,
    bytes: torn.bytesTruncated,
    reason: torn.reason,
    op: torn.op,
  };
  const action = torn.removeSegment ? 'the segment file would be removed' : 'it would be truncated';
  const op = torn.op === null ? '' : ` (op ${torn.op})`;
  findings.warning(
    `torn tail in ${name} at byte ${torn.position}${op}: ${torn.reason}, ${torn.bytesTruncated} ` +
      `bytes of an unfinished write; ${action} at start-up`,
  );
}

function crossCheck(
  superblock: VerifySuperblockReport,
  journal: JournalFindings,
  journalDirPresent: boolean,
  findings: Findings,
): void {
  const at = { segment: superblockFileName, position: 0, op: null };
  if (!superblock.present && (journal.segments.length > 0 || journal.recordCount > 0)) {
    findings.problem({ ...at, problem: superblockMissingProblem() });
  } else if (!superblock.present) {
    findings.warning('no superblock (a fresh or uninitialised data directory)');
  }
  const state = superblock.state;
  // A missing journal directory is one problem (reported by verifyJournal), not two.
  if (state === null || !journalDirPresent) return;
  const problem = commitBeyondJournalProblem(state.commit, journal.opMax);
  if (problem !== null) findings.problem({ ...at, op: state.commit, problem });
}
