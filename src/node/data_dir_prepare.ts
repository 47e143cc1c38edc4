// Making sure the data directory can be used before anything is started on it: it is created
// when missing (with its parents), and must then be a directory this process can write into.
// A path that cannot be used is an operating outcome, not a bug: the failure is a KmbError
// KMB_ERR_STORAGE_IO naming the path and why in words ("is a file, not a directory", "cannot be
// written by this user"), with the errno kept as its cause, never a raw "EEXIST … mkdir" under
// KMB_ERR_INTERNAL.

import { constants as fsConstants } from 'node:fs';
import { access, mkdir, stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { KmbError, kmbError } from '../core/errors.js';

/** What an errno from mkdir/access means for a data directory, in words. */
const errnoReasons: Readonly<Record<string, string>> = {
  EACCES: 'permission denied',
  EPERM: 'the operation is not permitted',
  EROFS: 'the file system is read-only',
  ENOSPC: 'the disk is full',
  EDQUOT: 'the disk quota is exhausted',
  ENAMETOOLONG: 'the path is too long',
  ELOOP: 'the path has a loop of symbolic links',
  ENOTDIR: 'a part of the path is a file, not a directory',
  EEXIST: 'it exists and is not a directory',
  EISDIR: 'it is a directory',
  ENOENT: 'a directory on the path does not exist',
};

function errnoOf(error: unknown): string | undefined {
  const code = (error as NodeJS.ErrnoException | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/**
 * A file system error in words with its errno ("permission denied (EACCES)"); also used by
 * other tools that report a path they cannot write (audit export).
 */
export function describeFsError(error: unknown): string {
  const errno = errnoOf(error);
  if (errno === undefined) return error instanceof Error ? error.message : String(error);
  return `${errnoReasons[errno] ?? 'failed'} (${errno})`;
}

function unusable(dataDir: string, why: string, cause?: unknown): KmbError {
  const fix = 'choose another --data-dir (or [storage] data_dir) or fix the path';
  return kmbError('storage_io', `data directory ${dataDir} cannot be used: ${why}; ${fix}`, cause);
}

/** The deepest existing part of `path` that is not a directory, if any. */
async function fileInTheWay(path: string): Promise<string | null> {
  let current = resolve(path);
  for (;;) {
    const found = await stat(current).catch(() => null);
    if (found !== null) return found.isDirectory() ? null : current;
    const parent = dirname(current);
    if (parent === current) return null;
    current = parent;
  }
}

/**
 * Creates the data directory if needed and checks that it is a directory this process may
 * create files in. Throws KMB_ERR_STORAGE_IO naming the path and the reason.
 */
export async function prepareDataDir(dataDir: string): Promise<void> {
  try {
    await mkdir(dataDir, { recursive: true });
  } catch (error) {
    const errno = errnoOf(error);
    if (errno === 'EEXIST' || errno === 'ENOTDIR') {
      const file = await fileInTheWay(dataDir);
      if (file !== null) {
        const what = file === resolve(dataDir) ? 'it is' : `${file} is`;
        throw unusable(dataDir, `${what} a file, not a directory`, error);
      }
    }
    const why =
      errno === undefined ? String(error) : `${errnoReasons[errno] ?? 'failed'} (${errno})`;
    throw unusable(dataDir, `it cannot be created: ${why}`, error);
  }
  const found = await stat(dataDir);
  if (!found.isDirectory()) throw unusable(dataDir, 'it is not a directory');
  try {
    await access(dataDir, fsConstants.W_OK | fsConstants.X_OK);
  } catch (error) {
    const errno = errnoOf(error);
    const why =
      errno === undefined ? String(error) : `${errnoReasons[errno] ?? 'failed'} (${errno})`;
    throw unusable(dataDir, `this user cannot create files in it: ${why}`, error);
  }
}
