// Durable records of assertion failures, for kimberlite_assertion_failures_total.
//
// An AssertionError is never caught (HOUSE_RULES §5): the process dies and its supervisor
// restarts it. A counter in memory would therefore always read 0. Instead the server's fatal
// handler calls recordAssertionFailureSync() just before the process exits, which rewrites one
// small file in the data directory, `assertion_failures.json` = {count, last: {timestamp, pid,
// message}}; the next start reads the count into the counter. Operators reset the count, after
// the incident is resolved, by deleting the file (docs/metrics.md).
//
// Invariants: the record is written synchronously (the process is about to exit) to a temporary
// file, fsynced, then renamed over the old one, so a crash during the write leaves the previous
// record whole; the file is bounded (one count, one message of at most messageCharsMax); a
// record that cannot be read counts as 0 and never stops the node from starting.

import {
  closeSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';

export const assertionRecordFileName = 'assertion_failures.json';
/** The failure message kept in the record is cut to this length. */
export const messageCharsMax = 2000;

interface AssertionRecord {
  readonly count: number;
  readonly last: { readonly timestamp: string; readonly pid: number; readonly message: string };
}

/** True for an AssertionError (ours, src/core/assert.ts, or node:assert's). */
export function isAssertionFailure(error: unknown): error is Error {
  return error instanceof Error && error.name === 'AssertionError';
}

/**
 * Records an assertion failure that kills this process, and returns the count earlier runs
 * recorded. The monitor hook runs before Node's own crash handling, which it leaves unchanged:
 * an AssertionError is still never caught (HOUSE_RULES §5). Call once per process.
 */
export function installAssertionRecorder(dataDir: string): number {
  process.on('uncaughtExceptionMonitor', (error) => {
    if (isAssertionFailure(error)) recordAssertionFailureSync(dataDir, error);
  });
  return countAssertionFailures(dataDir);
}

/** The number of assertion failures recorded in `dataDir` (0 when none or unreadable). */
export function countAssertionFailures(dataDir: string): number {
  let text: string;
  try {
    text = readFileSync(join(dataDir, assertionRecordFileName), 'utf8');
  } catch {
    return 0;
  }
  try {
    const parsed = JSON.parse(text) as { count?: unknown };
    const count = parsed.count;
    return typeof count === 'number' && Number.isSafeInteger(count) && count > 0 ? count : 0;
  } catch {
    return 0;
  }
}

/**
 * Adds one assertion failure to the record in `dataDir`, synchronously and durably. Never
 * throws: the caller is already dying, and the original failure matters more than this one.
 * Returns the new count, or null when the record could not be written.
 */
export function recordAssertionFailureSync(dataDir: string, error: Error): number | null {
  try {
    mkdirSync(dataDir, { recursive: true });
    const record: AssertionRecord = {
      count: countAssertionFailures(dataDir) + 1,
      last: {
        timestamp: new Date().toISOString(),
        pid: process.pid,
        message: (error.stack ?? error.message).slice(0, messageCharsMax),
      },
    };
    const path = join(dataDir, assertionRecordFileName);
    const temporary = `${path}.tmp`;
    const fd = openSync(temporary, 'w');
    try {
      writeSync(fd, `${JSON.stringify(record)}\n`);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(temporary, path);
    const dir = openSync(dataDir, 'r');
    try {
      fsyncSync(dir);
    } finally {
      closeSync(dir);
    }
    return record.count;
  } catch {
    return null;
  }
}
