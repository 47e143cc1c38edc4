// An exclusive lock on a data directory, so that two server processes can never append to the
// same journal (two writers break the hash chain). Node has no flock(), so on Linux the lock is
// an abstract-namespace Unix socket (a name starting with NUL: no file on any disk) named after
// the data directory's device and inode: `\0kimberlite-lock/<dev>/<ino>`. Binding it fails with
// EADDRINUSE while another process holds it, and the kernel releases it when the holder exits,
// however it exits (kill -9 included). There is no file whose deletion could defeat it, and the
// name follows the directory itself, not the path it was reached by (a symlink or a bind mount
// of the same directory gives the same name).
//
// <dataDir>/LOCK still holds the owner's pid and host, for people and diagnostics; it is no
// longer the lock. A clean stop removes it; one left behind by a crash is simply overwritten.
// On a full disk it may be missing or empty: the node still starts (to serve reads), locked.
//
// What the operating-system lock does not cover: abstract sockets belong to a network namespace,
// so two containers in different network namespaces that mount the same volume, or two hosts
// sharing it over NFS, do not see each other's lock. There the LOCK file is all that is left,
// and it only informs: with the socket free, a LOCK file left by another process (a crash, or
// a holder this process cannot see) is overwritten and its content reported to `onTakeover`,
// for the log. Its pid is not trusted there: after a reboot it may name an unrelated process,
// and in another pid namespace it names nothing at all.
// On platforms without abstract sockets (anything but Linux), the LOCK file is the whole lock,
// created exclusively and judged stale when its pid no longer runs on this host.
//
// Invariants: on Linux, at most one process on one network namespace holds the socket of a
// directory; the socket accepts no connection (each is destroyed at once) and does not keep the
// process alive; release() removes the LOCK file only if it still names this process.

import { createServer } from 'node:net';
import type { Server } from 'node:net';
import { hostname } from 'node:os';
import { open, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { kmbError } from '../core/errors.js';
import { isNoSpaceError } from '../storage/file_io.js';

export const lockFileName = 'LOCK';
/** The prefix of the abstract socket name; the same for every cluster and every node. */
export const lockSocketPrefix = 'kimberlite-lock';

export interface DataDirLock {
  readonly path: string;
  release(): Promise<void>;
}

export interface LockOptions {
  /**
   * Told when a LOCK file left by another process was overwritten (a crash, or a holder this
   * process cannot see: another network namespace or host). `owner` is the file's content.
   */
  readonly onTakeover?: (owner: string) => void;
  /** Use the abstract-socket lock (default: on Linux). Tests force the fallback with false. */
  readonly socketLock?: boolean;
}

/** The abstract socket name of a data directory (leading NUL), from its device and inode. */
export async function lockSocketName(dataDir: string): Promise<string> {
  const stats = await stat(dataDir, { bigint: true });
  return `\0${lockSocketPrefix}/${stats.dev}/${stats.ino}`;
}

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

/** The LOCK file's content: the pid on the first line, then `host=<hostname>`. */
function lockFileText(): string {
  return `${process.pid}\nhost=${hostname()}\n`;
}

interface LockFileOwner {
  readonly text: string;
  readonly pid: number | null;
  readonly host: string | null;
}

async function readOwner(path: string): Promise<LockFileOwner | null> {
  const text = await readFile(path, 'utf8').catch(() => null);
  if (text === null) return null;
  const [first = '', ...rest] = text.split('\n');
  const pid = Number.parseInt(first.trim(), 10);
  const hostLine = rest.find((line) => line.startsWith('host='));
  return {
    text: text.trim().replace(/\n/g, ' '),
    pid: Number.isSafeInteger(pid) && pid > 0 ? pid : null,
    host: hostLine === undefined ? null : hostLine.slice('host='.length),
  };
}

/** A live process on this host other than this one, as a LOCK file names it, or null. */
async function liveOwner(owner: LockFileOwner | null): Promise<number | null> {
  if (owner === null || owner.pid === null || owner.pid === process.pid) return null;
  if (owner.host !== null && owner.host !== hostname()) return null;
  return (await alive(owner.pid)) ? owner.pid : null;
}

function inUse(dataDir: string, path: string, pid: number | null): Error {
  const who = pid === null ? 'another process' : `process ${pid}`;
  return kmbError(
    'config_invalid',
    `data directory ${dataDir} is in use by ${who} (lock file ${path}); ` +
      'two servers must never share a data directory',
  );
}

/** Binds the abstract socket; false when another process holds it. */
function bindSocket(name: string): Promise<Server | null> {
  return new Promise((resolve, reject) => {
    const server = createServer((socket) => socket.destroy());
    server.once('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'EADDRINUSE') resolve(null);
      else reject(error);
    });
    server.listen(name, () => {
      server.unref(); // The lock never keeps the process alive.
      resolve(server);
    });
  });
}

/** Takes the lock or throws KMB_ERR_CONFIG_INVALID naming the process that holds it. */
export async function lockDataDir(
  dataDir: string,
  options: LockOptions = {},
): Promise<DataDirLock> {
  const socketLock = options.socketLock ?? process.platform === 'linux';
  if (!socketLock) return lockWithFile(dataDir, options);
  const path = join(dataDir, lockFileName);
  const server = await bindSocket(await lockSocketName(dataDir));
  if (server === null) throw inUse(dataDir, path, (await readOwner(path))?.pid ?? null);
  try {
    const previous = await readOwner(path);
    if (previous !== null && previous.pid !== process.pid) options.onTakeover?.(previous.text);
    // The file only informs; on a full disk the node starts without it (and refuses writes).
    await writeFile(path, lockFileText()).catch((error: unknown) => {
      if (!isNoSpaceError(error)) throw error;
    });
  } catch (error) {
    server.close();
    throw error;
  }
  return {
    path,
    release: async () => {
      if ((await readOwner(path))?.pid === process.pid) await rm(path, { force: true });
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

async function tryCreate(path: string): Promise<boolean> {
  try {
    const handle = await open(path, 'wx');
    await handle.writeFile(lockFileText());
    await handle.sync();
    await handle.close();
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw error;
  }
}

/** The fallback where abstract sockets do not exist: an exclusive LOCK file, stale when dead. */
async function lockWithFile(dataDir: string, options: LockOptions): Promise<DataDirLock> {
  const path = join(dataDir, lockFileName);
  for (let attempt = 0; attempt < 2; attempt++) {
    if (await tryCreate(path)) {
      return { path, release: () => rm(path, { force: true }) };
    }
    const owner = await readOwner(path);
    const pid = await liveOwner(owner);
    if (pid !== null) throw inUse(dataDir, path, pid);
    if (owner !== null) options.onTakeover?.(owner.text);
    await rm(path, { force: true }); // Stale: its owner is gone.
  }
  throw kmbError('storage_io', `could not take the lock ${path}`);
}
