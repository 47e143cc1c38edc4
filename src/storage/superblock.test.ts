// Tests of the superblock: create/open/write, the newest valid copy winning, surviving damaged
// copies, refusing when none is valid, the copy codec, and that a crash at any point of a write
// leaves the old state or the new one.

import assert from 'node:assert/strict';
import { mkdir, open, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';

import fc from 'fast-check';

import { AssertionError } from '../core/assert.js';
import { sha256, sha256SizeBytes } from '../core/checksum.js';
import { constants } from '../core/constants.js';
import { errorCodes, KmbError } from '../core/errors.js';
import { asOp, asReplicaIndex, asView } from '../core/types.js';
import { realFileIO } from './file_io.js';
import { RecordingFileIO } from './recording_file_io.js';
import { Superblock, superblockPath } from './superblock.js';
import { clientSessionCountUnrecorded, decodeCopy, encodeCopy } from './superblock_copy.js';
import { sessionBoundOf } from './superblock_copy.js';
import type { SuperblockState } from './superblock_copy.js';
import { testSuperblockState, withTempDir } from './test_support.js';

const copySize = constants.superblockCopySizeBytes;
const copyCount = constants.superblockCopyCount;
/** A torn copy write: its first bytes (checksum, sequence) new, the rest (state) still old. */
const tornWriteBytes = 64;

async function writeCopies(dir: string, copies: readonly Uint8Array[]): Promise<void> {
  await writeFile(superblockPath(dir), Buffer.concat(copies));
}

async function damage(dir: string, copyIndex: number, offset = 100): Promise<void> {
  const handle = await open(superblockPath(dir), 'r+');
  try {
    await handle.write(new Uint8Array([0xff, 0x00, 0xaa]), 0, 3, copyIndex * copySize + offset);
  } finally {
    await handle.close();
  }
}

const stateArbitrary: fc.Arbitrary<SuperblockState> = fc
  .record({
    cluster: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
    clusterName: fc.string({ maxLength: 60 }),
    replicaCount: fc.integer({ min: 1, max: constants.replicaCountMax }),
    replicaSeed: fc.nat(),
    view: fc.integer({ min: 0, max: 2 ** 40 }),
    logViewSeed: fc.nat(),
    commit: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
    clientSessionCountMax: fc.integer({ min: 1, max: 0xffff_ffff }),
  })
  .map((r) => ({
    cluster: r.cluster,
    clusterName: r.clusterName,
    replica: asReplicaIndex(r.replicaSeed % r.replicaCount),
    replicaCount: r.replicaCount,
    view: asView(r.view),
    logView: asView(r.logViewSeed % (r.view + 1)),
    commit: asOp(r.commit),
    clientSessionCountMax: r.clientSessionCountMax,
  }));

describe('superblock', () => {
  it('is absent in a fresh dir, then created, written and reopened, sequence growing', async () => {
    // Proves the life cycle: open → null on a fresh dir; create → sequence 1; each write adds
    // one to the sequence and a reopen sees the newest state with every copy valid.
    await withTempDir(async (dir) => {
      const dataDir = join(dir, 'data');
      assert.equal(await Superblock.open(dataDir), null);
      const created = await Superblock.create(dataDir, testSuperblockState);
      assert.equal(created.sequence, 1);
      await created.write({ view: asView(3), logView: asView(3) });
      await created.write({ commit: asOp(42) });
      assert.equal(created.sequence, 3);
      const reopened = await Superblock.open(dataDir);
      assert.ok(reopened !== null);
      assert.equal(reopened.sequence, 3);
      assert.deepEqual(reopened.state, {
        ...testSuperblockState,
        view: 3,
        logView: 3,
        commit: 42,
      });
      assert.equal(reopened.report.validCount, copyCount);
      assert.ok(reopened.report.copies.every((copy) => copy.valid && copy.current));
      await assert.rejects(Superblock.create(dataDir, testSuperblockState), {
        code: errorCodes.storage_io,
      });
    });
  });

  it('fsyncs the directory after creating the file', async () => {
    // Proves create() makes the new directory entry durable: the rename into place is followed
    // by an fsync of the data directory.
    await withTempDir(async (dir) => {
      const io = new RecordingFileIO(realFileIO);
      await Superblock.create(dir, testSuperblockState, io);
      const renameAt = io.events.findIndex((e) => e.kind === 'rename');
      const dirSyncAt = io.events.findIndex((e) => e.kind === 'fsync_dir' && e.path === dir);
      assert.ok(renameAt >= 0 && dirSyncAt > renameAt);
    });
  });

  it('lets the newest valid copy win', async () => {
    // Proves selection by sequence: copies with sequences 5, 7, 6 and an invalid one open as
    // the state of sequence 7, and only that copy is reported current.
    await withTempDir(async (dir) => {
      const state = (commit: number): SuperblockState => ({
        ...testSuperblockState,
        commit: asOp(commit),
      });
      await writeCopies(dir, [
        encodeCopy(0, 5, state(50)),
        encodeCopy(1, 7, state(70)),
        encodeCopy(2, 6, state(60)),
        new Uint8Array(copySize).fill(3),
      ]);
      const superblock = await Superblock.open(dir);
      assert.ok(superblock !== null);
      assert.equal(superblock.sequence, 7);
      assert.equal(superblock.state.commit, 70);
      assert.equal(superblock.report.validCount, 3);
      assert.deepEqual(
        superblock.report.copies.map((copy) => copy.current),
        [false, true, false, false],
      );
    });
  });

  it('opens with damaged copies, and the next write repairs them all', async () => {
    // Proves resilience: with three of four copies damaged the last one is used; a write then
    // restores every copy, writing the damaged copies first and the only good one last.
    await withTempDir(async (dir) => {
      const created = await Superblock.create(dir, testSuperblockState);
      await created.write({ commit: asOp(9) });
      for (const index of [0, 1, 2]) await damage(dir, index);
      const io = new RecordingFileIO(realFileIO);
      const superblock = await Superblock.open(dir, io);
      assert.ok(superblock !== null);
      assert.equal(superblock.report.validCount, 1);
      assert.equal(superblock.state.commit, 9);
      io.clear();
      await superblock.write({ commit: asOp(10) });
      const writes = io.events.filter((e) => e.kind === 'write' || e.kind === 'datasync');
      const firstSync = writes.findIndex((e) => e.kind === 'datasync');
      const lastGroup = writes.slice(firstSync).map((e) => e.position);
      assert.ok(lastGroup.includes(3 * copySize), 'the only good copy is written last');
      const reopened = await Superblock.open(dir);
      assert.equal(reopened?.report.validCount, copyCount);
      assert.equal(reopened?.state.commit, 10);
    });
  });

  it('refuses to open when no copy is valid', async () => {
    // Proves that a superblock file with every copy damaged is corruption, not a fresh dir.
    await withTempDir(async (dir) => {
      await Superblock.create(dir, testSuperblockState);
      for (let index = 0; index < copyCount; index++) await damage(dir, index);
      await assert.rejects(Superblock.open(dir), (error: unknown) => {
        assert.ok(error instanceof KmbError);
        assert.equal(error.code, errorCodes.storage_corrupt);
        assert.ok(error.message.includes(superblockPath(dir)));
        assert.match(error.message, /no valid superblock copy/);
        return true;
      });
    });
  });

  it('detects a copy written into the wrong slot', async () => {
    // Proves the copy index guards against misdirected writes.
    const bytes = encodeCopy(0, 1, testSuperblockState);
    assert.equal(decodeCopy(bytes, 0).ok, true);
    const decoded = decodeCopy(bytes, 1);
    assert.equal(decoded.ok, false);
    if (!decoded.ok) assert.match(decoded.problem, /slot/);
  });

  it('records the client session bound, and reads a copy from before it as unrecorded', () => {
    // Proves the bound's place in the copy: a state with bound 3 round-trips; a copy holding 0
    // there (as every copy written before the field existed does), re-checksummed, decodes as
    // unrecorded (0) instead of failing as "reserved bytes are not zero", and sessionBoundOf
    // gives the compiled-in default for it.
    const bytes = encodeCopy(0, 1, { ...testSuperblockState, clientSessionCountMax: 3 });
    const decoded = decodeCopy(bytes, 0);
    assert.ok(decoded.ok);
    assert.equal(decoded.state.clientSessionCountMax, 3);
    const old = bytes.slice();
    old.fill(0, 58, 62);
    old.set(sha256(old.subarray(sha256SizeBytes)), 0);
    const oldDecoded = decodeCopy(old, 0);
    assert.ok(oldDecoded.ok);
    assert.equal(oldDecoded.state.clientSessionCountMax, clientSessionCountUnrecorded);
    assert.equal(sessionBoundOf(oldDecoded.state), constants.clientSessionCountMax);
    assert.equal(sessionBoundOf(decoded.state), 3);
  });

  it('round-trips any valid state and rejects any flipped byte (property)', () => {
    // Proves the codec: decode(encode(s)) = s for random states, and any single flipped byte
    // anywhere in the copy makes it invalid.
    fc.assert(
      fc.property(
        stateArbitrary,
        fc.integer({ min: 1, max: 2 ** 40 }),
        fc.nat(copySize - 1),
        (state, sequence, flipAt) => {
          const bytes = encodeCopy(2, sequence, state);
          const decoded = decodeCopy(bytes, 2);
          assert.ok(decoded.ok);
          assert.equal(decoded.sequence, sequence);
          assert.deepEqual(decoded.state, state);
          const flipped = bytes.slice();
          flipped[flipAt] = (flipped[flipAt] ?? 0) ^ 0x01;
          assert.equal(decodeCopy(flipped, 2).ok, false);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('asserts that view, commit and the cluster never go back', async () => {
    // Proves write() treats a regressing update as a programmer error.
    await withTempDir(async (dir) => {
      const superblock = await Superblock.create(dir, { ...testSuperblockState, view: asView(4) });
      await assert.rejects(superblock.write({ view: asView(3) }), AssertionError);
      await assert.rejects(superblock.write({ cluster: 1 }), AssertionError);
      await superblock.write({ commit: asOp(1) });
      assert.equal(superblock.sequence, 2);
    });
  });

  it('leaves the old or the new state after a crash at any point of a write', async () => {
    // Proves crash safety: a write's copy writes are replayed one by one onto the old file,
    // with the write in progress torn (only its first bytes written) and, alternatively,
    // everything since the last datasync lost; every crash point opens to the old state or the
    // new one. Run from a clean file and from one where only the last copy was valid.
    for (const damaged of [[], [0, 1, 2]]) {
      await withTempDir(async (dir) => {
        const superblock = await Superblock.create(dir, testSuperblockState);
        for (const index of damaged) await damage(dir, index);
        const before = await readFile(superblockPath(dir));
        const io = new RecordingFileIO(realFileIO);
        const reopened = await Superblock.open(dir, io);
        assert.ok(reopened !== null && superblock.sequence === 1);
        io.clear();
        await reopened.write({ commit: asOp(77) });
        await checkCrashPoints(dir, before, io);
      });
    }
  });

  it('refuses further writes after a failed datasync', async () => {
    // Proves the fsync-failure rule for the superblock: KMB_ERR_STORAGE_IO, then refusal.
    await withTempDir(async (dir) => {
      const io = new RecordingFileIO(realFileIO);
      const superblock = await Superblock.create(dir, testSuperblockState, io);
      io.faults.datasync = () => new Error('EIO: simulated');
      await assert.rejects(superblock.write({ commit: asOp(1) }), { code: errorCodes.storage_io });
      io.faults = {};
      await assert.rejects(superblock.write({ commit: asOp(2) }), { code: errorCodes.storage_io });
    });
  });
});

/**
 * Replays the copy writes recorded in `io` onto `before`, crashing after each one with the
 * current write torn, and checks that every crashed file opens as sequence old or new.
 */
async function checkCrashPoints(dir: string, before: Buffer, io: RecordingFileIO): Promise<void> {
  const after = await readFile(superblockPath(dir));
  const steps = io.events.filter((e) => e.kind === 'write' || e.kind === 'datasync');
  const crashDir = join(dir, 'crash');
  await mkdir(crashDir);
  for (let crashAt = 0; crashAt <= steps.length; crashAt++) {
    const image = Buffer.from(before);
    let syncedImage = Buffer.from(before);
    steps.slice(0, crashAt).forEach((step, i) => {
      if (step.kind === 'datasync') {
        syncedImage = Buffer.from(image);
        return;
      }
      const position = step.position ?? 0;
      const torn = i === crashAt - 1 ? tornWriteBytes : copySize;
      after.copy(image, position, position, position + torn);
    });
    for (const candidate of [image, syncedImage]) {
      await writeFile(superblockPath(crashDir), candidate);
      const opened = await Superblock.open(crashDir);
      assert.ok(opened !== null, `crash point ${crashAt}`);
      assert.ok(opened.sequence === 1 || opened.sequence === 2, `crash point ${crashAt}`);
      if (opened.sequence === 2) assert.equal(opened.state.commit, 77);
    }
  }
}
