// Tests of verifyDataDir and formatVerifyReport: a clean report, a fresh dir, read-only-ness,
// going on past problems into later segments, superblock checks, and the printed summary.

import assert from 'node:assert/strict';
import { copyFile, open, readdir, rm, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';

import { toHex } from '../core/checksum.js';
import { constants } from '../core/constants.js';
import { headerSizeBytes, rootPrepare } from '../core/header.js';
import type { Prepare } from '../core/header.js';
import { asOp } from '../core/types.js';
import { realFileIO } from './file_io.js';
import { Journal } from './journal.js';
import { RecordingFileIO } from './recording_file_io.js';
import { segmentHeaderSizeBytes } from './segment_header.js';
import { Superblock, superblockPath } from './superblock.js';
import { makeChain, patternBodies, testCluster, testSuperblockState } from './test_support.js';
import { withTempDir } from './test_support.js';
import { formatVerifyReport, verifyDataDir } from './verify.js';
import { journalDirMissingProblem, superblockMissingProblem } from './data_dir_rules.js';

async function makeDataDir(dir: string, prepares: readonly Prepare[], segmentSize = 1024) {
  const superblock = await Superblock.create(dir, testSuperblockState);
  const journal = await Journal.open({
    dir,
    cluster: testCluster,
    segmentSizeBytesMax: segmentSize,
  });
  await Promise.all(prepares.map((prepare) => journal.append(prepare)));
  await journal.close();
  return superblock;
}

async function xorByte(path: string, position: number): Promise<void> {
  const handle = await open(path, 'r+');
  try {
    const byte = new Uint8Array(1);
    await handle.read(byte, 0, 1, position);
    byte[0] = (byte[0] ?? 0) ^ 0xff;
    await handle.write(byte, 0, 1, position);
  } finally {
    await handle.close();
  }
}

describe('verify', () => {
  it('reports a clean data dir as ok with its counts and head checksum', async () => {
    // Proves the clean summary: every record counted across segments, op max, total size and
    // the head checksum as hex, no problems, and a printed "OK".
    await withTempDir(async (dir) => {
      const prepares = makeChain(patternBodies(25, 100));
      await makeDataDir(dir, prepares);
      const report = await verifyDataDir(dir);
      assert.equal(report.ok, true, JSON.stringify(report.problems));
      assert.equal(report.recordCount, 25);
      assert.equal(report.opMax, 25);
      assert.equal(report.headChecksum, toHex(prepares[24]?.header.checksum ?? new Uint8Array()));
      assert.ok(report.segments.length > 2);
      assert.equal(
        report.segments.reduce((sum, s) => sum + s.recordCount, 0),
        25,
      );
      assert.equal(report.superblock.validCount, constants.superblockCopyCount);
      assert.equal(report.superblock.cluster, testCluster);
      assert.deepEqual(report.warnings, []);
      // The journal laid zeros down after its last record; earlier segments were cut back.
      const last = report.segments.at(-1);
      assert.ok(last !== undefined && last.freeBytes > 0 && last.freeBytes < 1024);
      assert.ok(report.segments.slice(0, -1).every((segment) => segment.freeBytes === 0));
      const text = formatVerifyReport(report);
      assert.match(text, /Result: OK/);
      assert.match(text, /25 records/);
      assert.match(text, new RegExp(`\\(${last.freeBytes} bytes of it free space\\)`));
    });
  });

  it('accepts a fresh data directory with warnings only', async () => {
    // Proves an empty dir is not corrupt (a node that never started), while a missing dir is.
    await withTempDir(async (dir) => {
      const report = await verifyDataDir(dir);
      assert.equal(report.ok, true);
      assert.equal(report.recordCount, 0);
      assert.ok(report.warnings.length > 0);
      const missing = await verifyDataDir(join(dir, 'nope'));
      assert.equal(missing.ok, false);
    });
  });

  it('reports a superblock without its journal, and segment files without a superblock', async () => {
    // Proves the pairing rules start-up shares (data_dir_rules.ts), each as exactly one problem:
    // a superblock (commit 3) whose journal directory was deleted — not "a fresh directory" —
    // and journal segment files, even ones holding no record, whose superblock was deleted.
    await withTempDir(async (dir) => {
      const superblock = await makeDataDir(dir, makeChain(patternBodies(3, 10)));
      await superblock.write({ commit: asOp(3) });
      await rm(join(dir, 'journal'), { recursive: true });
      let report = await verifyDataDir(dir);
      assert.deepEqual(
        report.problems.map((p) => [p.segment, p.problem]),
        [['journal/', journalDirMissingProblem(3)]],
      );
      await unlink(superblockPath(dir));
      const journal = await Journal.open({ dir, cluster: testCluster });
      await journal.close(); // An empty first segment: a header, no record.
      report = await verifyDataDir(dir);
      assert.deepEqual(
        report.problems.map((p) => [p.segment, p.problem]),
        [['superblock.kmb', superblockMissingProblem()]],
      );
      assert.match(formatVerifyReport(report), /superblock file is missing/);
    });
  });

  it('never writes: only read opens, no truncation even of a torn tail', async () => {
    // Proves verify is read-only with a recording FileIO, on a dir with a torn tail that
    // start-up would truncate.
    await withTempDir(async (dir) => {
      await makeDataDir(dir, makeChain(patternBodies(5, 100)), 1 << 20);
      const path = join(dir, 'journal', '00000000.kjl');
      const handle = await open(path, 'r+');
      // 30 bytes short of the records' end (the file runs on into free space after them).
      await handle.truncate(segmentHeaderSizeBytes + 5 * (headerSizeBytes + 100) - 30);
      await handle.close();
      const io = new RecordingFileIO(realFileIO);
      const report = await verifyDataDir(dir, io);
      assert.equal(report.ok, true);
      assert.equal(report.tornTail?.reason, 'body_incomplete');
      const writing = io.events.filter((e) =>
        ['write', 'truncate', 'unlink', 'rename', 'mkdir', 'datasync', 'sync'].includes(e.kind),
      );
      assert.deepEqual(writing, []);
      assert.ok(io.events.filter((e) => e.kind === 'open').every((e) => e.detail === 'read'));
    });
  });

  it('goes on past problems and reports each, in several segments', async () => {
    // Proves verify does not stop at the first problem: a damaged body in the first segment and
    // a damaged header in a later one are both reported with file, position and op, and every
    // other record is still counted.
    await withTempDir(async (dir) => {
      const prepares = makeChain(patternBodies(30, 100));
      await makeDataDir(dir, prepares);
      const files = (await readdir(join(dir, 'journal'))).sort();
      assert.ok(files.length >= 4);
      const recordSize = headerSizeBytes + 100;
      const second = segmentHeaderSizeBytes + recordSize; // op 2 in segment 0
      await xorByte(join(dir, 'journal', files[0] as string), second + headerSizeBytes + 5);
      const lastFile = files.at(-1) as string;
      const journal = await verifyDataDir(dir);
      const lastFirstOp = journal.segments.at(-1)?.opFirst ?? 0;
      await xorByte(join(dir, 'journal', lastFile), segmentHeaderSizeBytes + 40);
      const report = await verifyDataDir(dir);
      assert.equal(report.ok, false);
      assert.equal(report.problems.length, 2, JSON.stringify(report.problems));
      const [bodyProblem, headerProblem] = report.problems;
      assert.deepEqual(
        { ...bodyProblem, problem: '' },
        { segment: files[0], position: second, op: 2, problem: '' },
      );
      assert.match(bodyProblem?.problem ?? '', /body checksum/);
      assert.equal(headerProblem?.segment, lastFile);
      assert.equal(headerProblem?.position, segmentHeaderSizeBytes);
      assert.equal(headerProblem?.op, lastFirstOp);
      assert.equal(report.recordCount, 28);
      assert.equal(report.opMax, 30);
      const text = formatVerifyReport(report);
      assert.ok(text.includes(`${files[0]}, byte ${second}, op 2: record body`), text);
      assert.ok(text.includes(`${lastFile}, byte ${segmentHeaderSizeBytes}, op ${lastFirstOp}`));
      assert.match(text, /Result: CORRUPT, 2 problems/);
    });
  });

  it('detects a chain break across a segment boundary', async () => {
    // Proves the hash chain is followed from one segment into the next: a whole segment
    // replaced by a valid one from a diverged history is reported.
    await withTempDir(async (dir) => {
      const prepares = makeChain(patternBodies(12, 100));
      await makeDataDir(dir, prepares);
      const otherDir = join(dir, 'other');
      const diverged = [
        ...prepares.slice(0, 3),
        ...makeChain(
          patternBodies(9, 100).map((b) => b.reverse()),
          { previous: prepares[2] as Prepare },
        ),
      ];
      await makeDataDir(otherDir, diverged);
      const files = (await readdir(join(dir, 'journal'))).sort();
      const lastFile = files.at(-1) as string;
      await copyFile(join(otherDir, 'journal', lastFile), join(dir, 'journal', lastFile));
      const report = await verifyDataDir(dir);
      assert.equal(report.ok, false);
      assert.ok(
        report.problems.some((p) => p.segment === lastFile && /hash chain/.test(p.problem)),
      );
      await assert.rejects(Journal.open({ dir, cluster: testCluster }), /hash chain broken/);
    });
  });

  it('checks the superblock: a bad copy warns; all bad or a commit past the log fail', async () => {
    // Proves the superblock part of verify: one bad copy is a warning; a commit beyond the
    // journal's last op is a problem (committed records missing); all copies bad is a problem.
    await withTempDir(async (dir) => {
      const superblock = await makeDataDir(dir, makeChain(patternBodies(4, 10)));
      await xorByte(superblockPath(dir), 200);
      let report = await verifyDataDir(dir);
      assert.equal(report.ok, true);
      assert.equal(report.superblock.validCount, constants.superblockCopyCount - 1);
      assert.ok(report.warnings.some((w) => /copy 0 is invalid/.test(w)));
      const reopened = await Superblock.open(dir);
      await reopened?.write({ commit: asOp(9) });
      report = await verifyDataDir(dir);
      assert.equal(report.ok, false);
      assert.ok(report.problems.some((p) => /commit 9 is beyond/.test(p.problem)));
      for (let i = 0; i < constants.superblockCopyCount; i++) {
        await xorByte(superblockPath(dir), i * constants.superblockCopySizeBytes + 300);
      }
      report = await verifyDataDir(dir);
      assert.equal(report.ok, false);
      assert.equal(report.superblock.validCount, 0);
      assert.equal(superblock.sequence, 1);
    });
  });

  it('reports a journal of another cluster than the superblock', async () => {
    // Proves the cluster id is cross-checked: segment headers and records naming another
    // cluster than the superblock are problems.
    await withTempDir(async (dir) => {
      await Superblock.create(dir, { ...testSuperblockState, cluster: testCluster + 1 });
      const journal = await Journal.open({ dir, cluster: testCluster });
      for (const prepare of makeChain(patternBodies(2, 10))) await journal.append(prepare);
      await journal.close();
      const report = await verifyDataDir(dir);
      assert.equal(report.ok, false);
      assert.ok(report.problems.some((p) => /cluster/.test(p.problem)));
      assert.equal(report.headChecksum.length, 64);
      assert.notEqual(report.headChecksum, toHex(rootPrepare(testCluster).header.checksum));
    });
  });
});
