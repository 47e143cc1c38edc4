// An exclusive lock on a data directory, so that two server processes can never append to the
// same journal. Node has no flock(), so the lock is a file created with O_EXCL holding the owner's
// pid. A lock left behind by a process that died (kill -9 is a normal event here) is stale: when
// the pid in it is no longer alive (or is a zombie: exited, not yet reaped), the lock is taken
// over. The remaining gap — the pid having
// been reused by an unrelated live process — makes the node refuse to start with a message naming
// the file, which is the safe direction.

import { open, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { kmbError } from '../core/errors.js';

export const lockFileName = 'LOCK';

/** Whether a process exists and has not exited; a zombie (exited, not yet reaped) is dead. */
async function alive(pid: number): Promise<boolean> {
  try {
    process.kill(pid, 0);
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => null);
  if (stat === null) return true; // No procfs: trust kill(pid, 0).
  const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  return state !== 'Z' && state !== 'X';
}

export interface DataDirLock {
  readonly path: string;
  release(): Promise<void>;
}

async function tryCreate(path: string): Promise<boolean> {
  try {
    const handle = await open(path, 'wx');
    await handle.writeFile(`${process.pid}\n`);
    await handle.sync();
    await handle.close();
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw error;
  }
}

/** Takes the lock or throws KMB_ERR_CONFIG_INVALID naming the process that holds it. */
export async function lockDataDir(dataDir: string): Promise<DataDirLock> {
  const path = join(dataDir, lockFileName);
  for (let attempt = 0; attempt < 2; attempt++) {
    if (await tryCreate(path)) {
      return { path, release: () => rm(path, { force: true }) };
    }
    const owner = Number.parseInt((await readFile(path, 'utf8').catch(() => '')).trim(), 10);
    if (Number.isSafeInteger(owner) && owner > 0 && owner !== process.pid && (await alive(owner))) {
      throw kmbError(
        'config_invalid',
        `data directory ${dataDir} is in use by process ${owner} (lock file ${path}); ` +
          'two servers must never share a data directory',
      );
    }
    await rm(path, { force: true }); // Stale: its owner is gone.
  }
  throw kmbError('storage_io', `could not take the lock ${path}`);
}
