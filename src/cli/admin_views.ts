// `kimberlite-admin views --data-dir DIR [--json]`: rebuilds every derived view (views/view_set.ts)
// offline from a replica's journal and prints each view's name, applied op and digest, so that
// a replica's views can be compared with another's, or with the live ones (/status, digests
// from the same code), at the same op. Strictly read-only, like verify: the superblock and the
// segments are opened for reading only and nothing is truncated, not even a torn tail.
//
// Only committed ops are applied: through max(superblock commit, the largest `commit` any
// journalled prepare header carries), as audit export counts them (a primary names an op in
// `commit` only once a quorum holds it), and never past the journal's last op. A running
// server's last few ops may not be named committed yet; stop it first for a quiet directory.
// The journal is read twice: once for the commit numbers, once to replay. The replay is
// node/committed_replay.ts (the replica's executor, the superblock's session bound, the kernel
// from op 1), fed to a view host; it stops at a gap in the ops or a body that is not a batch,
// reports why and exits 1 (kimberlite-admin verify says more).

import type { Command } from 'commander';
import { DecodeError } from '../core/binary.js';
import { kmbError } from '../core/errors.js';
import { toHex } from '../core/checksum.js';
import { CommittedExecutor } from '../node/committed_replay.js';
import { realFileIO } from '../storage/file_io.js';
import type { FileIO } from '../storage/file_io.js';
import { readSuperblock } from '../storage/superblock.js';
import { sessionBoundOf } from '../storage/superblock_copy.js';
import type { SuperblockState } from '../storage/superblock_copy.js';
import { ViewHost } from '../views/view_host.js';
import { createViewSet } from '../views/view_set.js';
import { forEachRecord } from './admin_replay.js';
import type { CliIo } from './cli_io.js';
import { exitCodes, write, writeJson } from './cli_io.js';

export interface ViewReport {
  readonly name: string;
  readonly applied_op: number;
  /** digest() of the view, hex: equal on replicas (and live) at the same applied op. */
  readonly digest: string;
}

export interface ViewsReport {
  readonly data_dir: string;
  /** The last op the journal holds. */
  readonly journal_op_max: number;
  /** The op through which the data directory shows the log committed: what replay aims for. */
  readonly committed_op: number;
  /** Every view reached committed_op. */
  readonly complete: boolean;
  /** Why replay stopped early; null when complete. */
  readonly problem: string | null;
  readonly views: readonly ViewReport[];
}

async function superblockOf(dataDir: string, io: FileIO): Promise<SuperblockState> {
  const reading = await readSuperblock(dataDir, io);
  if (reading === null) {
    throw kmbError('not_found', `${dataDir} holds no superblock: not a kimberlite data directory`);
  }
  if (reading.state === null) {
    const why = `${dataDir} has no valid superblock copy`;
    throw kmbError('storage_corrupt', `${why}; run kimberlite-admin verify for the report`);
  }
  return reading.state;
}

/** The journal's last op and the op through which it is known committed. */
async function committedExtent(
  dataDir: string,
  superblock: SuperblockState,
  io: FileIO,
): Promise<{ journalOpMax: number; committedOp: number }> {
  let journalOpMax = 0;
  let headerCommitMax = 0;
  await forEachRecord(dataDir, superblock.cluster, io, (_segment, record) => {
    journalOpMax = Math.max(journalOpMax, record.header.op);
    headerCommitMax = Math.max(headerCommitMax, record.header.commit);
  });
  const committedOp = Math.min(journalOpMax, Math.max(superblock.commit, headerCommitMax));
  return { journalOpMax, committedOp };
}

/** Rebuilds every view from the data directory's journal; never writes anything. */
export async function rebuildViewsOffline(
  dataDir: string,
  io: FileIO = realFileIO,
): Promise<ViewsReport> {
  const superblock = await superblockOf(dataDir, io);
  const { journalOpMax, committedOp } = await committedExtent(dataDir, superblock, io);
  const views = createViewSet().all;
  const host = new ViewHost(views);
  const executor = new CommittedExecutor(sessionBoundOf(superblock));
  let problem: string | null = null;
  await forEachRecord(dataDir, superblock.cluster, io, (_segment, record) => {
    const { op } = record.header;
    if (problem !== null || op > committedOp) return;
    if (op !== executor.opExecuted + 1) {
      problem = `op ${op} follows op ${executor.opExecuted}: the journal has a gap`;
      return;
    }
    try {
      host.executed(executor.execute(record));
    } catch (error) {
      if (!(error instanceof DecodeError)) throw error;
      problem = `op ${op}: the prepare body does not decode as a batch: ${error.message}`;
    }
  });
  if (problem === null && executor.opExecuted < committedOp) {
    const end = executor.opExecuted;
    problem = `the journal ends at op ${end}, below the committed op ${committedOp}`;
  }
  return {
    data_dir: dataDir,
    journal_op_max: journalOpMax,
    committed_op: committedOp,
    complete: problem === null,
    problem,
    views: views.map((view) => ({
      name: view.name,
      applied_op: view.appliedOp,
      digest: toHex(view.digest()),
    })),
  };
}

export function formatViewsReport(report: ViewsReport): string {
  const lines = [
    `Views of ${report.data_dir}, rebuilt from the journal (ops 1..${report.journal_op_max}, ` +
      `committed through op ${report.committed_op}):`,
  ];
  const width = Math.max(...report.views.map((view) => view.name.length));
  for (const view of report.views) {
    const name = view.name.padEnd(width);
    lines.push(`  ${name}  applied op ${view.applied_op}  digest ${view.digest}`);
  }
  lines.push(
    report.problem === null
      ? `Views result: OK, every view applied through op ${report.committed_op}.`
      : `Views result: INCOMPLETE, ${report.problem}; kimberlite-admin verify says more.`,
  );
  return `${lines.join('\n')}\n`;
}

async function viewsCommand(io: CliIo, dataDir: string, json: boolean): Promise<number> {
  const report = await rebuildViewsOffline(dataDir);
  if (json) await writeJson(io, report);
  else await write(io.stdout, formatViewsReport(report));
  return report.complete ? exitCodes.ok : exitCodes.failure;
}

export function addViewsCommand(program: Command, io: CliIo, exit: { code: number }): void {
  program
    .command('views')
    .description('rebuild every derived view from the journal; print positions and digests')
    .requiredOption('--data-dir <dir>', 'the data directory of one replica')
    .option('--json', 'print one JSON report instead of text')
    .action(async (options: { dataDir: string; json?: boolean }) => {
      exit.code = await viewsCommand(io, options.dataDir, options.json === true);
    });
}
