// Proves the data-directory lock. With the operating-system lock (Linux): a second holder is
// refused while the first holds it, even after the LOCK file was deleted; a holder killed with
// SIGKILL frees it at once (a child process takes it, is killed, and the lock is taken again,
// its leftover LOCK file reported as a takeover); release frees it and removes the LOCK file.
// With the LOCK-file fallback (other platforms): a live owner is refused, naming it; a lock left
// by a dead process is taken over; release frees it.

import { strict as assert } from 'node:assert';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { lockDataDir, lockFileName, lockSocketName } from './data_dir_lock.js';

const linux = process.platform === 'linux';

async function withDir(work: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'kmb-lock-'));
  try {
    await work(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Starts a child process that takes the lock of `dir` and waits; resolves once it holds it. */
async function lockInChild(dir: string): Promise<ReturnType<typeof spawn>> {
  const module = fileURLToPath(new URL('./data_dir_lock.ts', import.meta.url));
  const script =
    `const { lockDataDir } = await import(${JSON.stringify(module)});` +
    `await lockDataDir(${JSON.stringify(dir)}); process.stdout.write('locked\\n');` +
    'setInterval(() => {}, 1000);';
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await new Promise<void>((resolve, reject) => {
    child.stdout?.on('data', (data: Buffer) => {
      if (data.toString().includes('locked')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`lock child exited ${code}`)));
  });
  return child;
}

describe('data directory lock (operating-system lock)', { skip: !linux }, () => {
  it('is named after the directory, not its path', async () => {
    await withDir(async (dir) => {
      const stats = await stat(dir, { bigint: true });
      assert.equal(await lockSocketName(dir), `\0kimberlite-lock/${stats.dev}/${stats.ino}`);
      assert.equal(await lockSocketName(`${dir}/.`), await lockSocketName(dir));
    });
  });

  it('refuses a second holder even after the LOCK file is deleted, and releases', async () => {
    await withDir(async (dir) => {
      const lock = await lockDataDir(dir);
      assert.match(await readFile(lock.path, 'utf8'), new RegExp(`^${process.pid}\\nhost=`));
      await rm(join(dir, lockFileName));
      await assert.rejects(lockDataDir(dir), /is in use by another process/);
      await lock.release();
      assert.equal(await readFile(lock.path, 'utf8').catch(() => null), null, 'LOCK removed');
      const again = await lockDataDir(dir);
      await again.release();
    });
  });

  it('is freed by the kernel when its holder is killed with SIGKILL', async () => {
    await withDir(async (dir) => {
      const child = await lockInChild(dir);
      await assert.rejects(lockDataDir(dir), new RegExp(`in use by process ${child.pid}`));
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGKILL');
      await exited;
      const takeovers: string[] = [];
      const lock = await lockDataDir(dir, { onTakeover: (owner) => takeovers.push(owner) });
      assert.deepEqual(
        takeovers.map((owner) => owner.split(' ')[0]),
        [String(child.pid)],
        'the leftover LOCK file is reported',
      );
      await lock.release();
    });
  });
});

describe('data directory lock (LOCK-file fallback)', () => {
  it('refuses a live owner, takes over a dead one, and releases', async () => {
    await withDir(async (dir) => {
      const options = { socketLock: false };
      // A live owner: pid 1 always exists.
      await writeFile(join(dir, lockFileName), '1\n');
      await assert.rejects(lockDataDir(dir, options), /in use by process 1/);
      // A dead owner: a process that has exited.
      const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']);
      await writeFile(join(dir, lockFileName), `${dead.stdout.toString()}\n`);
      const lock = await lockDataDir(dir, options);
      assert.equal((await readFile(lock.path, 'utf8')).split('\n')[0], String(process.pid));
      await lock.release();
      const again = await lockDataDir(dir, options);
      await again.release();
    });
  });
});
