// kimberlite-admin: offline tools that work on a data directory, not through the cluster.
// `verify --data-dir DIR [--json]` runs two checks, both strictly read-only:
//   1. the storage verify (storage/verify.ts): superblock copies, segment headers, record and
//      body checksums, the prepare hash chain, the superblock's commit against the journal;
//   2. the kernel replay (admin_replay.ts): every body decodes, commands replay in op order,
//      per-stream offsets are contiguous and every event's chain link recomputes.
// The storage check always runs first and its problems are reported even when replay cannot
// get far. Exit 0 when both are clean, 1 when anything is wrong (every problem names its file,
// byte position, op and what is wrong), 2 for a usage mistake.
//
// `audit export|verify` live in admin_audit.ts, `diagnostics` in admin_diagnostics.ts and
// `views` (rebuild the derived views offline) in admin_views.ts.
//
// runAdmin() takes its output streams as arguments so tests run it in-process; main() is what
// bin/kimberlite-admin.js calls with process.argv.

import { Command } from 'commander';
import { formatVerifyReport, verifyDataDir } from '../storage/verify.js';
import type { VerifyReport } from '../storage/verify.js';
import { addAuditCommands } from './admin_audit.js';
import { addDiagnosticsCommand } from './admin_diagnostics.js';
import { replayDataDir } from './admin_replay.js';
import { addViewsCommand } from './admin_views.js';
import type { ReplayProblem, ReplayReport } from './admin_replay.js';
import type { CliIo } from './cli_io.js';
import { exitCodes, processIo, runProgram, write, writeJson } from './cli_io.js';

function formatReplayProblem(problem: ReplayProblem): string {
  const op = problem.op === null ? 'op -' : `op ${problem.op}`;
  const where = problem.segment === '' ? 'kernel state' : problem.segment;
  return `${where}, byte ${problem.position}, ${op}: ${problem.problem}`;
}

function replayVerdict(replay: ReplayReport, problemCount: number): string {
  if (!replay.ok) {
    return `Replay result: CORRUPT, ${problemCount} problem${problemCount === 1 ? '' : 's'} found.`;
  }
  if (!replay.complete) {
    return (
      `Replay result: INCOMPLETE, stopped after op ${replay.opApplied}; ` +
      'the problems above say why.'
    );
  }
  return 'Replay result: OK, the log replays cleanly.';
}

/** The replay's part of the text report, after the storage report. */
export function formatReplayReport(replay: ReplayReport): string {
  const lines = [
    `Kernel replay: ${replay.recordCount} records, applied through op ${replay.opApplied}; ` +
      `${replay.registerCount} sessions, ${replay.commandCount} commands ` +
      `(${replay.rejectedCount} rejected by the kernel, ${replay.skippedCount} skipped)`,
    `State: ${replay.tenantCount} tenants, ${replay.streamCount} streams, ` +
      `${replay.eventCount} events; state digest ${replay.stateDigest}`,
  ];
  if (replay.warnings.length > 0) {
    lines.push(`Replay warnings (${replay.warnings.length + replay.warningsOmittedCount}):`);
    for (const warning of replay.warnings) lines.push(`  - ${warning}`);
  }
  const problemCount = replay.problems.length + replay.problemsOmittedCount;
  if (problemCount > 0) {
    lines.push(`Replay problems (${problemCount}):`);
    for (const problem of replay.problems) lines.push(`  - ${formatReplayProblem(problem)}`);
    const omitted = replay.problemsOmittedCount;
    if (omitted > 0) lines.push(`  … and ${omitted} more`);
  }
  lines.push(replayVerdict(replay, problemCount));
  return `${lines.join('\n')}\n`;
}

async function verify(io: CliIo, dataDir: string, json: boolean): Promise<number> {
  const storage: VerifyReport = await verifyDataDir(dataDir);
  const replay = await replayDataDir(dataDir, storage.superblock.cluster);
  const ok = storage.ok && replay.ok;
  if (json) {
    await writeJson(io, { ok, storage, replay });
  } else {
    await write(io.stdout, formatVerifyReport(storage));
    await write(io.stdout, formatReplayReport(replay));
    const verdict = ok ? 'OK' : 'CORRUPT';
    await write(io.stdout, `Overall: ${verdict} (${dataDir})\n`);
  }
  return ok ? exitCodes.ok : exitCodes.failure;
}

/** The commander program; the verify action stores its exit code in `exit`. */
function buildProgram(io: CliIo, exit: { code: number }): Command {
  const program = new Command('kimberlite-admin')
    .description('kimberlite-ts offline administration of a data directory')
    .exitOverride()
    .configureOutput({
      writeOut: (text) => io.stdout.write(text),
      writeErr: (text) => io.stderr.write(text),
      outputError: () => undefined,
    });
  program
    .command('verify')
    .description('check a data directory: checksums, hash chain, superblock, kernel replay')
    .requiredOption('--data-dir <dir>', 'the data directory of one replica')
    .option('--json', 'print one JSON report instead of text')
    .action(async (options: { dataDir: string; json?: boolean }) => {
      exit.code = await verify(io, options.dataDir, options.json === true);
    });
  addAuditCommands(program, io, exit);
  addDiagnosticsCommand(program, io, exit);
  addViewsCommand(program, io, exit);
  return program;
}

/** Runs kimberlite-admin on arguments (without node and script path); resolves with the code. */
export async function runAdmin(args: readonly string[], io: CliIo): Promise<number> {
  const exit = { code: exitCodes.ok as number };
  return runProgram(buildProgram(io, exit), exit, args, io);
}

/** The entry point of bin/kimberlite-admin.js: argv is process.argv. */
export async function main(argv: string[]): Promise<void> {
  process.exitCode = await runAdmin(argv.slice(2), processIo());
}
