// Proves that a superblock write on a full disk waits instead of failing: with its datasync
// refused with ENOSPC three times, write() stays pending with `full` set, every retry writes the
// group's copies again before it datasyncs, and once the disk takes the data the write resolves
// and a reopen reads the new state. An EIO is still a failure (KMB_ERR_STORAGE_IO).

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { errorCodes } from '../core/errors.js';
import { asOp, asView } from '../core/types.js';
import { realFileIO } from './file_io.js';
import { RecordingFileIO } from './recording_file_io.js';
import { Superblock } from './superblock.js';
import { testSuperblockState, withTempDir } from './test_support.js';

function errnoError(code: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}: simulated`), { code });
}

describe('superblock on a full disk', () => {
  it('waits for space, writing the copies again before each datasync, then resolves', async () => {
    await withTempDir(async (dir) => {
      const io = new RecordingFileIO(realFileIO);
      const superblock = await Superblock.create(dir, testSuperblockState, io);
      superblock.fullRetryIntervalMs = 2;
      let failures = 3;
      io.faults.datasync = () => (failures-- > 0 ? errnoError('ENOSPC') : undefined);
      io.clear();
      let resolved = false;
      const writing = superblock.write({ view: asView(3), commit: asOp(0) }).then(() => {
        resolved = true;
      });
      while (failures > 0) await new Promise((resolve) => setTimeout(resolve, 1));
      assert.equal(superblock.full, true);
      assert.equal(resolved, false);
      await writing;
      assert.equal(superblock.full, false);
      // Every datasync attempt (failed or not) follows at least one write of copies.
      const steps = io.events.filter((e) => e.kind === 'write' || e.kind === 'datasync_start');
      steps.forEach((step, index) => {
        if (step.kind === 'datasync_start') assert.equal(steps[index - 1]?.kind, 'write');
      });
      assert.equal(io.count('datasync_start'), 5, 'three failed attempts, then both groups');
      const reopened = await Superblock.open(dir);
      assert.equal(reopened?.state.view, 3);
    });
  });

  it('still fails on EIO', async () => {
    await withTempDir(async (dir) => {
      const io = new RecordingFileIO(realFileIO);
      const superblock = await Superblock.create(dir, testSuperblockState, io);
      io.faults.datasync = () => errnoError('EIO');
      await assert.rejects(superblock.write({ view: asView(1) }), { code: errorCodes.storage_io });
    });
  });
});
