// Start-up's judgement of the data directory: whether to format it, refuse it, or open it, and
// whether the journal it opens holds everything this replica ever acknowledged. The node calls
// these from KimberliteNode.start; the rules themselves, in the words verify uses too, are in
// storage/data_dir_rules.ts. docs/operations.md ("Start-up and damaged data directories") has the
// table of cases.
//
// Formatting: only a directory with no superblock file, no journal segment files, and nothing
// but what the server itself creates before formatting (the LOCK file, assertion-failure
// records, a superblock temporary file or an empty journal directory left by a crash while
// formatting) is formatted without asking. A directory holding anything else is refused
// (KMB_ERR_CONFIG_INVALID) unless `--format` is given, which formats it by adding superblock.kmb
// and journal/ beside what is there; nothing is ever deleted. A missing superblock beside journal
// segment files is refused whatever the flags (KMB_ERR_STORAGE_CORRUPT): the superblock was lost,
// and formatting would start a new history over the old one. Formatting creates the journal
// directory (durably) before the superblock, so a superblock without a journal directory is
// always damage, never a crash while formatting.
//
// The journal against the superblock: a journal holding less than the superblock's commit lost
// committed records. A single node refuses to start (Journal.open with onCorruption 'refuse'
// throws before changing anything); a replica with peers starts not intact, votes in no view
// change and fetches the missing ops from its peers before it serves. Either way an ERROR line
// names the superblock commit, the journal's last valid op and the data directory.
//
// The client session bound ([consensus] client_sessions_max) is recorded in the superblock at
// format time and is part of the data: it decides which sessions are evicted, so which commands
// apply. Opening a directory with another configured bound is refused (KMB_ERR_CONFIG_INVALID).
//
// Invariants: nothing here writes to a directory it refuses; every decision is logged once.

import { KmbError, kmbError } from '../core/errors.js';
import { clusterIdFromName } from '../core/header.js';
import { asOp, asReplicaIndex, asView } from '../core/types.js';
import type { Logger } from '../observability/logger.js';
import { assertionRecordFileName } from '../observability/assertion_records.js';
import {
  CommittedRecordsMissingError,
  commitBeyondJournalProblem,
  journalDirMissingProblem,
  superblockMissingProblem,
} from '../storage/data_dir_rules.js';
import { realFileIO } from '../storage/file_io.js';
import type { FileIO } from '../storage/file_io.js';
import type { Journal } from '../storage/journal.js';
import { journalDirName, journalDirOf, listSegmentIndexes } from '../storage/segment_file.js';
import { clientSessionCountUnrecorded } from '../storage/superblock_copy.js';
import { verifyCommand, withIoErrors } from '../storage/storage_errors.js';
import {
  Superblock,
  superblockFileName,
  superblockTemporaryFileName,
} from '../storage/superblock.js';
import { lockFileName } from './data_dir_lock.js';

/** Foreign entries named in a refusal or a log line; the rest are counted. */
export const foreignEntriesListedMax = 10;

/** Files the server itself creates in the data directory before (or while) formatting it. */
const ownEntryNames: ReadonlySet<string> = new Set([
  lockFileName,
  assertionRecordFileName,
  `${assertionRecordFileName}.tmp`,
  superblockTemporaryFileName,
]);

/** What a data directory holds, as far as formatting is concerned. */
export interface DataDirContents {
  readonly superblockPresent: boolean;
  readonly journalDirPresent: boolean;
  /** Segment files in the journal directory. */
  readonly segmentCount: number;
  /** Entries that are not kimberlite's, sorted by name. */
  readonly foreign: readonly string[];
}

export async function inspectDataDir(
  dataDir: string,
  io: FileIO = realFileIO,
): Promise<DataDirContents> {
  const names = (await io.stat(dataDir)) === null ? [] : await io.readdir(dataDir);
  const journalStat = await io.stat(journalDirOf(dataDir));
  const journalDirPresent = journalStat?.isDirectory === true;
  const segmentCount = journalDirPresent
    ? (await listSegmentIndexes(io, journalDirOf(dataDir))).length
    : 0;
  const foreign = names
    .filter((name) => !ownEntryNames.has(name) && name !== superblockFileName)
    .filter((name) => !(name === journalDirName && journalDirPresent))
    .sort();
  return {
    superblockPresent: names.includes(superblockFileName),
    journalDirPresent,
    segmentCount,
    foreign,
  };
}

export type FormatDecision =
  | { readonly kind: 'open' }
  | { readonly kind: 'format'; readonly reason: 'empty' | 'format_flag' }
  | { readonly kind: 'refuse'; readonly error: KmbError };

function listed(names: readonly string[]): string {
  const shown = names.slice(0, foreignEntriesListedMax).join(', ');
  const more = names.length - foreignEntriesListedMax;
  return more > 0 ? `${shown} and ${more} more` : shown;
}

/** Whether start-up may format `dataDir`, given what it holds and whether --format was given. */
export function decideFormat(
  contents: DataDirContents,
  options: { readonly dataDir: string; readonly format: boolean },
): FormatDecision {
  const { dataDir } = options;
  if (contents.superblockPresent) return { kind: 'open' };
  if (contents.segmentCount > 0) {
    const error = kmbError(
      'storage_corrupt',
      `storage corrupt: ${dataDir}: ${superblockMissingProblem()}. This directory held a ` +
        'replica, and formatting it (--format included) would start a new history over its ' +
        'journal, so start-up refuses. Nothing was changed on disk. Restore the data directory ' +
        `from a backup; \`${verifyCommand(dataDir)}\` reports what is there.`,
    );
    return { kind: 'refuse', error };
  }
  if (contents.foreign.length === 0) return { kind: 'format', reason: 'empty' };
  if (options.format) return { kind: 'format', reason: 'format_flag' };
  const error = kmbError(
    'config_invalid',
    `data directory ${dataDir} is not empty and holds no kimberlite data ` +
      `(${listed(contents.foreign)}). Start-up formats only an empty directory. Point ` +
      '--data-dir at an empty or new directory, or pass --format to format this one: it adds ' +
      `${superblockFileName} and ${journalDirName}/ and deletes nothing.`,
  );
  return { kind: 'refuse', error };
}

export interface StorageStartOptions {
  readonly dataDir: string;
  readonly clusterName: string;
  readonly nodeId: number;
  readonly replicaCount: number;
  /** [consensus] client_sessions_max: recorded at format, must match the recorded one later. */
  readonly clientSessionCountMax: number;
  /** --format: format a directory that holds other files (never one with kimberlite data). */
  readonly format: boolean;
  readonly logger: Logger;
  readonly io?: FileIO | undefined;
}

/** Opens the superblock, or formats the directory when that is allowed; throws a refusal. */
export async function openOrFormatSuperblock(
  options: StorageStartOptions,
): Promise<{ superblock: Superblock; formatted: boolean }> {
  const { dataDir, logger } = options;
  const io = options.io ?? realFileIO;
  const contents = await withIoErrors(`reading the data directory ${dataDir}`, () =>
    inspectDataDir(dataDir, io),
  );
  const decision = decideFormat(contents, { dataDir, format: options.format });
  if (decision.kind === 'refuse') throw decision.error;
  if (decision.kind === 'open') {
    const superblock = await Superblock.open(dataDir, io);
    if (superblock === null) throw kmbError('storage_io', `${dataDir}: the superblock vanished`);
    checkIdentity(superblock, options);
    await recordSessionBound(superblock, options);
    noteOpened(superblock, options);
    return { superblock, formatted: false };
  }
  const fields = { data_dir: dataDir, cluster_name: options.clusterName, reason: decision.reason };
  if (decision.reason === 'empty') logger.info('Formatting new data directory', fields);
  else {
    logger.warn('Formatting a non-empty data directory (--format); nothing in it is deleted', {
      ...fields,
      foreign_entries: listed(contents.foreign),
      foreign_entry_count: contents.foreign.length,
    });
  }
  return { superblock: await format(options, io), formatted: true };
}

/** The journal directory first (durably), then the superblock: see the file comment. */
async function format(options: StorageStartOptions, io: FileIO): Promise<Superblock> {
  const { dataDir } = options;
  await withIoErrors(`creating the journal directory of ${dataDir}`, async () => {
    await io.mkdir(journalDirOf(dataDir), { recursive: true });
    await io.fsyncDir(dataDir);
  });
  return Superblock.create(
    dataDir,
    {
      cluster: clusterIdFromName(options.clusterName),
      clusterName: options.clusterName,
      replica: asReplicaIndex(options.nodeId),
      replicaCount: options.replicaCount,
      view: asView(0),
      logView: asView(0),
      commit: asOp(0),
      clientSessionCountMax: options.clientSessionCountMax,
    },
    io,
  );
}

function checkIdentity(superblock: Superblock, options: StorageStartOptions): void {
  const state = superblock.state;
  if (state.clusterName !== options.clusterName) {
    throw kmbError(
      'cluster_mismatch',
      `data directory ${options.dataDir} belongs to cluster "${state.clusterName}", ` +
        `but this node is configured for cluster "${options.clusterName}"`,
    );
  }
  if (state.replica !== options.nodeId) {
    throw kmbError(
      'config_invalid',
      `data directory ${options.dataDir} belongs to node ${state.replica}, ` +
        `but [cluster] node_id is ${options.nodeId}`,
    );
  }
  const recorded = state.clientSessionCountMax;
  if (recorded !== clientSessionCountUnrecorded && recorded !== options.clientSessionCountMax) {
    // The bound decides which sessions are evicted, so which commands apply: replaying this
    // journal with another bound would build another state than the one the cluster agreed on.
    throw kmbError(
      'config_invalid',
      `data directory ${options.dataDir} was formatted with [consensus] client_sessions_max ` +
        `${state.clientSessionCountMax}, but it is configured as ` +
        `${options.clientSessionCountMax}; the bound is fixed for the life of the data: ` +
        `set client_sessions_max = ${state.clientSessionCountMax}`,
    );
  }
}

/**
 * A superblock written before the session bound was recorded holds none: the data was executed
 * with whatever the server was configured with, which the configured value is the best witness
 * of. It is recorded now, once, so that verify and audit export evict as the replica does.
 */
async function recordSessionBound(
  superblock: Superblock,
  options: StorageStartOptions,
): Promise<void> {
  if (superblock.state.clientSessionCountMax !== clientSessionCountUnrecorded) return;
  await superblock.write({ clientSessionCountMax: options.clientSessionCountMax });
  options.logger.info('Recorded the client session bound in the superblock', {
    data_dir: options.dataDir,
    client_sessions_max: options.clientSessionCountMax,
  });
}

function noteOpened(superblock: Superblock, options: StorageStartOptions): void {
  const invalid = superblock.report.copies.filter((copy) => !copy.valid);
  if (invalid.length > 0) {
    options.logger.warn('Superblock copies are invalid; the newest valid copy is used', {
      data_dir: options.dataDir,
      invalid_copies: invalid.map((copy) => `${copy.index}: ${copy.problem}`).join('; '),
      valid_copies: superblock.report.validCount,
    });
  }
  if (options.format) {
    options.logger.info('--format ignored: the data directory already holds kimberlite data', {
      data_dir: options.dataDir,
    });
  }
}

export interface JournalCheckOptions {
  readonly dataDir: string;
  readonly superblock: Superblock;
  readonly formatted: boolean;
  /** A single node: nothing to repair from, so damage refuses to start. */
  readonly alone: boolean;
  readonly logger: Logger;
  readonly io?: FileIO | undefined;
}

function logBehind(
  options: JournalCheckOptions,
  journalOpMax: number,
  problem: string,
  action: 'refuse_to_start' | 'repair_from_peers',
): void {
  const message =
    action === 'refuse_to_start'
      ? 'Journal lost committed records; a single node cannot repair them: refusing to start'
      : 'Journal lost committed records; starting not intact, repairing them from peers';
  options.logger.error(message, {
    data_dir: options.dataDir,
    superblock_commit: options.superblock.state.commit,
    journal_op_max: journalOpMax,
    problem,
    action,
  });
}

/**
 * Before Journal.open: a superblock without its journal directory lost every record. A single
 * node refuses (CommittedRecordsMissingError); a replica with peers goes on, not intact. Returns
 * whether the directory is there.
 */
export async function checkJournalDir(options: JournalCheckOptions): Promise<boolean> {
  const io = options.io ?? realFileIO;
  if ((await io.stat(journalDirOf(options.dataDir))) !== null) return true;
  const commit = options.superblock.state.commit;
  const problem = journalDirMissingProblem(commit);
  if (options.alone) {
    logBehind(options, 0, problem, 'refuse_to_start');
    throw new CommittedRecordsMissingError(options.dataDir, commit, 0, problem);
  }
  logBehind(options, 0, problem, 'repair_from_peers');
  return false;
}

/** Journal.open's refusal of a journal below the superblock's commit, logged, then rethrown. */
export function refusedJournal(options: JournalCheckOptions, error: unknown): never {
  if (error instanceof CommittedRecordsMissingError) {
    logBehind(options, error.journalOpMax, error.problem, 'refuse_to_start');
  }
  throw error;
}

/**
 * After Journal.open: logs what recovery cut, and returns whether the journal is intact (holds
 * every record this replica may have acknowledged). Only a replica with peers gets here with a
 * journal below the superblock's commit (a single node was refused).
 */
export function judgeJournal(
  options: JournalCheckOptions & { readonly journal: Journal; readonly journalDirPresent: boolean },
): boolean {
  const { journal, logger } = options;
  const truncated = journal.recovery.truncated;
  if (truncated !== null && truncated.reason === 'corruption') {
    logger.error('Journal corruption: cut at the first bad record; repairing from peers', {
      segment: truncated.segment,
      position: truncated.position,
      op: truncated.op,
      bytes: truncated.bytesTruncated,
    });
  } else if (truncated !== null) {
    logger.warn('Truncated torn tail of the journal', {
      segment: truncated.segment,
      position: truncated.position,
      bytes: truncated.bytesTruncated,
      reason: truncated.reason,
    });
  }
  const opMax = journal.recovery.opMax;
  const problem = commitBeyondJournalProblem(options.superblock.state.commit, opMax);
  // A missing journal directory was logged already (checkJournalDir).
  if (problem !== null && options.journalDirPresent) {
    logBehind(options, opMax, problem, 'repair_from_peers');
  }
  return options.journalDirPresent && truncated?.reason !== 'corruption' && problem === null;
}
