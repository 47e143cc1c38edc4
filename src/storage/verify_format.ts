// The human summary of a verify report, as `kimberlite-admin verify` prints it: one line for
// the superblock, one for the journal, then warnings, then every problem with its file, byte
// position, op and what is wrong, and a last line saying OK or CORRUPT.
//
// Invariant: pure formatting; everything printed comes from the report, so a report serialised
// as JSON and this text always say the same thing.

import type { VerifyProblem, VerifyReport } from './verify.js';

const MiB = 1024 * 1024;

function formatSize(sizeBytes: number): string {
  return sizeBytes >= MiB ? `${(sizeBytes / MiB).toFixed(1)} MiB` : `${sizeBytes} bytes`;
}

function superblockLine(report: VerifyReport): string {
  const superblock = report.superblock;
  if (!superblock.present) return 'Superblock: absent';
  const copies = `${superblock.validCount}/${superblock.copyCount} copies valid`;
  const state = superblock.state;
  if (state === null) return `Superblock: ${copies}`;
  return (
    `Superblock: ${copies}, sequence ${superblock.sequence}, cluster ${state.cluster} ` +
    `("${state.clusterName}"), replica ${state.replica} of ${state.replicaCount}, ` +
    `view ${state.view} (log view ${state.logView}), commit ${state.commit}`
  );
}

function journalLine(report: VerifyReport): string {
  const ops = report.recordCount === 0 ? 'no records' : `${report.recordCount} records`;
  const head = report.headChecksum === '' ? 'unknown' : `${report.headChecksum.slice(0, 16)}…`;
  const freeBytes = report.segments.reduce((sum, segment) => sum + segment.freeBytes, 0);
  const free = freeBytes > 0 ? ` (${formatSize(freeBytes)} of it free space)` : '';
  return (
    `Journal: ${report.segments.length} segments, ${ops}, op max ${report.opMax}, ` +
    `${formatSize(report.sizeBytes)}${free}, head checksum ${head}`
  );
}

export function formatProblem(problem: VerifyProblem): string {
  const op = problem.op === null ? 'op -' : `op ${problem.op}`;
  const where = problem.segment === '' ? 'data directory' : problem.segment;
  return `${where}, byte ${problem.position}, ${op}: ${problem.problem}`;
}

export function formatVerifyReport(report: VerifyReport): string {
  const lines = [`Verify ${report.dataDir}`, superblockLine(report), journalLine(report)];
  if (report.warnings.length > 0) {
    lines.push(`Warnings (${report.warnings.length + report.warningsOmittedCount}):`);
    for (const warning of report.warnings) lines.push(`  - ${warning}`);
    if (report.warningsOmittedCount > 0) {
      lines.push(`  … and ${report.warningsOmittedCount} more`);
    }
  }
  const problemCount = report.problems.length + report.problemsOmittedCount;
  if (problemCount > 0) {
    lines.push(`Problems (${problemCount}):`);
    for (const problem of report.problems) lines.push(`  - ${formatProblem(problem)}`);
    if (report.problemsOmittedCount > 0) {
      lines.push(`  … and ${report.problemsOmittedCount} more`);
    }
  }
  lines.push(
    report.ok
      ? 'Result: OK, no problems found.'
      : `Result: CORRUPT, ${problemCount} problem${problemCount === 1 ? '' : 's'} found. ` +
          'A single node refuses to start on it: restore the directory from a backup. A ' +
          'replica of a cluster fetches lost or corrupt records from its peers ' +
          '(docs/operations.md, "Start-up and damaged data directories").',
  );
  return `${lines.join('\n')}\n`;
}
