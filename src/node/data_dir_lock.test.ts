// Proves the data-directory lock: a second holder is refused while the first lives, naming the
// owner; a lock left by a dead process (as after kill -9) is taken over; release frees it.

import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { lockDataDir, lockFileName } from './data_dir_lock.js';

describe('data directory lock', () => {
  it('refuses a live owner, takes over a dead one, and releases', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kmb-lock-'));
    try {
      // A live owner: pid 1 always exists.
      await writeFile(join(dir, lockFileName), '1\n');
      await assert.rejects(lockDataDir(dir), /in use by process 1/);
      // A dead owner: a process that has exited.
      const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']);
      await writeFile(join(dir, lockFileName), `${dead.stdout.toString()}\n`);
      const lock = await lockDataDir(dir);
      assert.equal((await readFile(lock.path, 'utf8')).trim(), String(process.pid));
      await lock.release();
      const again = await lockDataDir(dir);
      await again.release();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
