// What a data directory must hold, stated once for the two places that judge it: start-up (the
// journal's recovery and the node's start-up check) and `kimberlite-admin verify`. Each rule is a
// function that returns the problem in words, so that a refusal at start-up and verify's report
// say exactly the same thing about the same damage.
//
// The rules (docs/operations.md, "Start-up and damaged data directories"):
// - the journal holds every op up to the superblock's commit: a superblock commit beyond the
//   journal's last valid op means committed, acknowledged records were lost (a segment file or
//   the journal directory deleted, a segment cut short), never a torn tail;
// - a superblock is never without its journal directory, and a journal's segment files are never
//   without a superblock (formatting creates the journal directory first, then the superblock;
//   segment files come only after both).
//
// Invariants: pure; the texts carry the numbers that identify the damage and nothing that
// differs between the two callers (no paths, which verify prints elsewhere).

import { KmbError, errorCodes } from '../core/errors.js';
import { journalDirName } from './segment_file.js';
import { verifyCommand } from './storage_errors.js';

/** The problem when the superblock's commit is beyond the journal's last valid op, else null. */
export function commitBeyondJournalProblem(commit: number, journalOpMax: number): string | null {
  if (commit <= journalOpMax) return null;
  return (
    `superblock commit ${commit} is beyond the journal's last valid op ${journalOpMax}: ` +
    'committed records are missing'
  );
}

/** The problem when a superblock exists but the journal directory does not. */
export function journalDirMissingProblem(commit: number): string {
  return (
    `the journal directory ${journalDirName}/ is missing beside a superblock (commit ${commit}): ` +
    'every journal record is lost'
  );
}

/** The problem when the journal has segment files but there is no superblock file. */
export function superblockMissingProblem(): string {
  return 'superblock file is missing, but the journal holds segment files';
}

/**
 * The refusal of a single node whose journal lost committed records: it carries the numbers for
 * the ERROR log line, and tells the operator what to do. Alone, the node has no peer that holds
 * those records, so serving would answer with acknowledged data missing and then write over it.
 */
export class CommittedRecordsMissingError extends KmbError {
  constructor(
    readonly dataDir: string,
    readonly superblockCommit: number,
    readonly journalOpMax: number,
    readonly problem: string,
  ) {
    super(
      errorCodes.storage_corrupt,
      `storage corrupt: ${dataDir}: ${problem}. Acknowledged writes are gone from this node's ` +
        'journal (a segment file or the journal directory was deleted or cut short), and a ' +
        'single node has no peer to fetch them from. Nothing was changed on disk. Restore the ' +
        `data directory from a backup; \`${verifyCommand(dataDir)}\` reports what is damaged ` +
        'and must say OK before this node starts.',
    );
  }
}

/** The refusal when the journal holds fewer ops than the superblock's commit (single node). */
export function committedRecordsMissing(
  dataDir: string,
  commit: number,
  journalOpMax: number,
): CommittedRecordsMissingError | null {
  const problem = commitBeyondJournalProblem(commit, journalOpMax);
  if (problem === null) return null;
  return new CommittedRecordsMissingError(dataDir, commit, journalOpMax, problem);
}
