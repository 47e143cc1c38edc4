// What the command-line tools read and write, passed in so tests can run them in-process:
// stdout, stderr, stdin and the environment. Also the tools' shared output conventions:
// writing with backpressure, one-line JSON, aligned text tables, and how an error is reported
// (exit code 1 and `error: CODE: message` on stderr, or `{"error":{...}}` with --json; usage
// errors exit with 2).

import { CommanderError } from 'commander';
import type { Command } from 'commander';
import type { Readable, Writable } from 'node:stream';
import { KmbError, errorCodes } from '../core/errors.js';
import type { ErrorCode } from '../core/errors.js';

export interface CliIo {
  readonly stdout: Writable;
  readonly stderr: Writable;
  readonly stdin: Readable;
  readonly env: Readonly<Record<string, string | undefined>>;
  /**
   * Calls `stop` when the operator interrupts (Ctrl-C, SIGTERM) until the returned function is
   * called; commands that run until interrupted (`--watch`) use it. Absent: never interrupted.
   */
  readonly onInterrupt?: (stop: () => void) => () => void;
}

export const exitCodes = { ok: 0, failure: 1, usage: 2 } as const;

/**
 * A mistake in how the tool was called (exit code 2); nothing was sent. Its code is
 * KMB_ERR_INVALID_ARGUMENT, or KMB_ERR_LIMIT_EXCEEDED for a value over a bound.
 */
export class UsageError extends KmbError {
  constructor(message: string, code: ErrorCode = errorCodes.invalid_argument) {
    super(code, message);
    this.name = 'UsageError';
  }
}

export function processIo(): CliIo {
  const onInterrupt = (stop: () => void): (() => void) => {
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
    return () => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
    };
  };
  const { stdout, stderr, stdin, env } = process;
  return { stdout, stderr, stdin, env, onInterrupt };
}

/** Writes text, waiting for the stream to drain when its buffer is full. */
export async function write(stream: Writable, text: string): Promise<void> {
  if (stream.write(text)) return;
  await new Promise<void>((resolve) => {
    const done = (): void => {
      stream.off('drain', done);
      stream.off('close', done);
      stream.off('error', done);
      resolve();
    };
    stream.on('drain', done);
    stream.on('close', done);
    stream.on('error', done);
  });
}

/** One JSON value on one line. */
export function writeJson(io: CliIo, value: unknown): Promise<void> {
  return write(io.stdout, `${JSON.stringify(value)}\n`);
}

/** Rows as columns padded to their widest cell, with a header row. */
export function formatTable(header: readonly string[], rows: readonly string[][]): string {
  const widths = header.map((title, column) =>
    Math.max(title.length, ...rows.map((row) => (row[column] ?? '').length)),
  );
  const line = (cells: readonly string[]): string =>
    cells
      .map((cell, column) => cell.padEnd(widths[column] ?? 0))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n') + '\n';
}

/** Reports an error on stderr in the tool's format and returns the exit code to use. */
export async function reportError(io: CliIo, error: KmbError, json: boolean): Promise<number> {
  const text = json
    ? `${JSON.stringify({ error: { code: error.code, message: error.message } })}\n`
    : `error: ${error.code}: ${error.message}\n`;
  await write(io.stderr, text);
  return error instanceof UsageError ? exitCodes.usage : exitCodes.failure;
}

/**
 * Runs a commander program on arguments (without node and script path) and turns its outcome
 * into an exit code: the code the command left in `exit`, 0 for help or version, 2 for a usage
 * error (reported like any error), 1 for a KmbError. Both binaries run through this.
 */
export async function runProgram(
  program: Command,
  exit: { code: number },
  args: readonly string[],
  io: CliIo,
): Promise<number> {
  const json = args.includes('--json');
  try {
    await program.parseAsync([...args], { from: 'user' });
    return exit.code;
  } catch (error) {
    if (error instanceof CommanderError) {
      if (error.code === 'commander.helpDisplayed' || error.code === 'commander.version') {
        return exitCodes.ok;
      }
      if (error.code === 'commander.help') return exitCodes.usage;
      const usage = new UsageError(error.message.replace(/^error:\s*/, ''));
      return reportError(io, usage, json);
    }
    if (error instanceof KmbError) return reportError(io, error, json);
    const system = systemErrorText(error);
    if (system !== null) return reportError(io, new KmbError(errorCodes.storage_io, system), json);
    throw error;
  }
}

/**
 * The text of an operating-system error (a file that cannot be written, a directory that does
 * not exist) that a command did not turn into a KmbError itself: such an error is the
 * operator's to fix and is reported as KMB_ERR_STORAGE_IO with exit code 1, never as a stack
 * trace. Anything else (a programmer error) is rethrown and still fails loudly.
 */
export function systemErrorText(error: unknown): string | null {
  if (!(error instanceof Error)) return null;
  const { code, syscall } = error as NodeJS.ErrnoException;
  if (typeof code !== 'string' || !/^E[A-Z]+$/.test(code) || typeof syscall !== 'string') {
    return null;
  }
  return error.message;
}
