// `kimberlite-admin audit export` and `kimberlite-admin audit verify` (spec 000 "Compliance
// Auditing"; docs/audit.md):
//
//   audit export --data-dir DIR --start DATE --end DATE [--format json] --output FILE [--json]
//       every committed command whose commit timestamp is in [start, end), with its audit
//       metadata and the hash-chain proof (node/audit_export.ts); FILE `-` writes to stdout.
//   audit verify FILE [--json]
//       offline check of an export (node/audit_verify.ts): exit 0 when every checksum, link and
//       the digest recompute, 1 naming the first bad entry.
//
// DATE is ISO-8601: 2024-01-31, 2024-01-31T10:00:00Z, 2024-01-31T10:00:00.123456+02:00; no
// offset means UTC; a bare --end date includes that whole day. Exit codes as every admin
// command: 0 ok, 1 failure (KMB_ERR_* on stderr), 2 usage. The file is written to FILE.tmp and
// renamed, so a reader never sees half an export; when FILE cannot be written (no such
// directory, a directory in the way, no permission, disk full) the command fails with
// KMB_ERR_STORAGE_IO naming FILE and why, and leaves no FILE.tmp behind.

import type { Command } from 'commander';
import { readFile, rename, rm, writeFile } from 'node:fs/promises';
import { kmbError } from '../core/errors.js';
import { exportAudit } from '../node/audit_export.js';
import { parseAuditTime } from '../node/audit_format.js';
import { verifyAuditExport } from '../node/audit_verify.js';
import { describeFsError } from '../node/data_dir_prepare.js';
import type { AuditVerifyReport } from '../node/audit_verify.js';
import type { CliIo } from './cli_io.js';
import { UsageError, exitCodes, write, writeJson } from './cli_io.js';

interface ExportFlags {
  dataDir: string;
  start: string;
  end: string;
  format: string;
  output: string;
  json?: boolean;
}

function timeFlag(name: string, text: string, endOfDay: boolean): number {
  const us = parseAuditTime(text, endOfDay);
  if (us === null) {
    throw new UsageError(`--${name} ${JSON.stringify(text)} is not an ISO-8601 date or date-time`);
  }
  return us;
}

/** Writes the export through a temporary file; see the top of the file for its failures. */
async function writeExport(output: string, text: string): Promise<void> {
  const temporary = `${output}.tmp`;
  try {
    await writeFile(temporary, text);
    await rename(temporary, output);
  } catch (error) {
    await rm(temporary, { force: true }).catch(() => undefined);
    const why = describeFsError(error);
    throw kmbError('storage_io', `cannot write the export to ${output}: ${why}`, error);
  }
}

async function exportCommand(io: CliIo, flags: ExportFlags): Promise<number> {
  if (flags.format !== 'json') {
    throw new UsageError(`--format ${JSON.stringify(flags.format)} is not supported; use json`);
  }
  const startUs = timeFlag('start', flags.start, false);
  const endUs = timeFlag('end', flags.end, true);
  if (startUs >= endUs) throw new UsageError('--start must be before --end');
  const document = await exportAudit({ dataDir: flags.dataDir, startUs, endUs });
  const text = `${JSON.stringify(document, null, 1)}\n`;
  if (flags.output === '-') {
    await write(io.stdout, text);
    return exitCodes.ok;
  }
  await writeExport(flags.output, text);
  const { summary, chain, digest } = document;
  const result = { output: flags.output, ...summary, ...chain, digest };
  if (flags.json === true) {
    await writeJson(io, result);
    return exitCodes.ok;
  }
  const ops =
    summary.prepare_count === 0 ? 'no ops' : `ops ${chain.anchor_op + 1}..${chain.head_op}`;
  await write(
    io.stdout,
    `Exported ${summary.prepare_count} prepares (${ops}), ${summary.command_count} commands, ` +
      `${summary.event_count} events to ${flags.output}\n` +
      `Range: ${document.range.start} .. ${document.range.end} (end excluded)\n` +
      `Head checksum: ${chain.head_checksum} (op ${chain.head_op})\nDigest: ${digest}\n`,
  );
  return exitCodes.ok;
}

function formatVerify(file: string, report: AuditVerifyReport): string {
  const ops = report.opFirst === null ? 'no ops' : `ops ${report.opFirst}..${report.opLast}`;
  const lines = [
    `Audit export ${file}: ${report.prepareCount} prepares (${ops}), ` +
      `${report.commandCount} commands, ${report.eventCount} events`,
  ];
  if (report.ok) {
    lines.push(`Head checksum: ${report.headChecksum}`);
    lines.push('Result: OK, every checksum, chain link and the digest recompute.');
    return `${lines.join('\n')}\n`;
  }
  const first = report.problems[0];
  if (first !== undefined) lines.push(`First bad entry: ${first.entry}: ${first.problem}`);
  lines.push(`Problems (${report.problemCount}):`);
  for (const problem of report.problems) lines.push(`  - ${problem.entry}: ${problem.problem}`);
  const omitted = report.problemCount - report.problems.length;
  if (omitted > 0) lines.push(`  … and ${omitted} more`);
  lines.push('Result: FAILED');
  return `${lines.join('\n')}\n`;
}

async function verifyCommand(io: CliIo, file: string, json: boolean): Promise<number> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    const why = error instanceof Error ? error.message : String(error);
    throw new UsageError(`cannot read ${file}: ${why}`);
  }
  const report = verifyAuditExport(text);
  if (json) await writeJson(io, { file, ...report });
  else await write(io.stdout, formatVerify(file, report));
  return report.ok ? exitCodes.ok : exitCodes.failure;
}

/** Adds `audit export` and `audit verify` to the kimberlite-admin program. */
export function addAuditCommands(program: Command, io: CliIo, exit: { code: number }): void {
  const audit = program.command('audit').description('export and verify the audit trail');
  audit
    .command('export')
    .description('export committed commands in [start, end) with their hash-chain proof')
    .requiredOption('--data-dir <dir>', 'the data directory of one replica')
    .requiredOption('--start <date>', 'ISO-8601 date or date-time (included)')
    .requiredOption('--end <date>', 'ISO-8601 date or date-time (excluded; a date: whole day)')
    .option('--format <format>', 'output format (json)', 'json')
    .requiredOption('--output <file>', 'where to write the export (- for stdout)')
    .option('--json', 'print a one-line JSON summary instead of text')
    .action(async (flags: ExportFlags) => {
      exit.code = await exportCommand(io, flags);
    });
  audit
    .command('verify')
    .description('check an export offline: checksums, chain links, digest')
    .argument('<file>', 'an export written by audit export')
    .option('--json', 'print one JSON report instead of text')
    .action(async (file: string, flags: { json?: boolean }) => {
      exit.code = await verifyCommand(io, file, flags.json === true);
    });
}
