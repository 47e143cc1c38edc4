// How storage turns failures into KmbErrors (HOUSE_RULES §6). Bytes on disk that are wrong are
// KMB_ERR_STORAGE_CORRUPT with a message naming the file, the byte position, the op when known
// and what is wrong, and telling the operator what to run. A failing system call is
// KMB_ERR_STORAGE_IO with the original error as `cause`. Assertion errors and KmbErrors pass
// through untouched: a programmer error is never disguised as an I/O error.

import { AssertionError } from '../core/assert.js';
import { KmbError, kmbError } from '../core/errors.js';

export interface CorruptionSite {
  /** The file (path) holding the bad bytes. */
  readonly file: string;
  readonly position: number;
  readonly op: number | null;
  readonly problem: string;
}

/** The command an operator runs for a full report of a data directory. */
export function verifyCommand(dataDir: string): string {
  return `kimberlite-admin verify --data-dir ${dataDir}`;
}

export function describeSite(site: CorruptionSite): string {
  const op = site.op === null ? '' : `, op ${site.op}`;
  return `${site.file} at byte ${site.position}${op}: ${site.problem}`;
}

export function corruptionError(dataDir: string, site: CorruptionSite): KmbError {
  return kmbError(
    'storage_corrupt',
    `storage corrupt: ${describeSite(site)}. Nothing was changed on disk. Run ` +
      `\`${verifyCommand(dataDir)}\` for a full report, and repair this replica from a peer.`,
  );
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Runs `work`; a system-call failure becomes KMB_ERR_STORAGE_IO naming `what`. */
export async function withIoErrors<T>(what: string, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    if (error instanceof KmbError || error instanceof AssertionError) throw error;
    throw kmbError('storage_io', `${what}: ${messageOf(error)}`, error);
  }
}

export function ioError(what: string, error: unknown): KmbError {
  return kmbError('storage_io', `${what}: ${messageOf(error)}`, error);
}
