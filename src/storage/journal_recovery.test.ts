// Tests of start-up recovery: what Journal.open truncates as a torn tail, what it refuses as
// corruption, and that verify (read-only) reports the same places — a torn tail as a warning
// with ok=true, corruption as a problem with ok=false. Each test damages real files on disk.

import assert from 'node:assert/strict';
import {
  copyFile,
  mkdir,
  open,
  readdir,
  stat,
  truncate,
  unlink,
  writeFile,
} from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';

import { errorCodes, KmbError } from '../core/errors.js';
import { CommittedRecordsMissingError, commitBeyondJournalProblem } from './data_dir_rules.js';
import { headerSizeBytes, makePrepare } from '../core/header.js';
import type { Prepare } from '../core/header.js';
import { asOp } from '../core/types.js';
import { rm } from 'node:fs/promises';
import { Journal } from './journal.js';
import { segmentHeaderSizeBytes } from './segment_header.js';
import { Superblock } from './superblock.js';
import { makeChain, patternBodies, samePrepare, testCluster } from './test_support.js';
import { testSuperblockState, withTempDir } from './test_support.js';
import { verifyDataDir } from './verify.js';
import type { VerifyReport } from './verify.js';

const segment0 = '00000000.kjl';

function segmentFile(dir: string, name = segment0): string {
  return join(dir, 'journal', name);
}

/**
 * Writes a journal of `prepares`. Without free space unless asked: most tests here craft damage
 * relative to the end of the file, which is then the end of the records; the free-space tests
 * below ask for it.
 */
async function writeJournal(
  dir: string,
  prepares: readonly Prepare[],
  segmentSizeBytesMax?: number,
  freeSpace = false,
): Promise<void> {
  if ((await Superblock.open(dir)) === null) await Superblock.create(dir, testSuperblockState);
  const journal = await Journal.open({ dir, cluster: testCluster, segmentSizeBytesMax, freeSpace });
  await Promise.all(prepares.map((prepare) => journal.append(prepare)));
  await journal.close();
}

/** The byte position of `op` in a single-segment journal. */
function positionOf(prepares: readonly Prepare[], op: number): number {
  let position = segmentHeaderSizeBytes;
  for (const prepare of prepares.slice(0, op - 1))
    position += headerSizeBytes + prepare.body.length;
  return position;
}

async function patch(path: string, position: number, bytes: Uint8Array): Promise<void> {
  const handle = await open(path, 'r+');
  try {
    await handle.write(bytes, 0, bytes.length, position);
  } finally {
    await handle.close();
  }
}

async function flipByte(path: string, position: number): Promise<void> {
  const handle = await open(path, 'r+');
  try {
    const byte = new Uint8Array(1);
    await handle.read(byte, 0, 1, position);
    byte[0] = (byte[0] ?? 0) ^ 0x5a;
    await handle.write(byte, 0, 1, position);
  } finally {
    await handle.close();
  }
}

async function appendRaw(path: string, prepare: Prepare): Promise<void> {
  const handle = await open(path, 'a');
  try {
    await handle.write(prepare.headerBytes);
    await handle.write(prepare.body);
  } finally {
    await handle.close();
  }
}

async function expectCorrupt(
  dir: string,
  site: { file: string; position: number; op: number | null; says: RegExp },
): Promise<VerifyReport> {
  const sizeBefore = (await stat(segmentFile(dir, site.file))).size;
  await assert.rejects(Journal.open({ dir, cluster: testCluster }), (error: unknown) => {
    assert.ok(error instanceof KmbError);
    assert.equal(error.code, errorCodes.storage_corrupt);
    assert.ok(error.message.includes(site.file), error.message);
    assert.ok(error.message.includes(`at byte ${site.position}`), error.message);
    if (site.op !== null) assert.ok(error.message.includes(`op ${site.op}`), error.message);
    assert.match(error.message, site.says);
    assert.ok(error.message.includes(`kimberlite-admin verify --data-dir ${dir}`));
    return true;
  });
  assert.equal((await stat(segmentFile(dir, site.file))).size, sizeBefore, 'open changed nothing');
  const report = await verifyDataDir(dir);
  assert.equal(report.ok, false);
  const found = report.problems.find(
    (p) => p.segment === site.file && p.position === site.position && site.says.test(p.problem),
  );
  assert.ok(found !== undefined, JSON.stringify(report.problems));
  if (site.op !== null) assert.equal(found.op, site.op);
  return report;
}

async function expectTorn(
  dir: string,
  prepares: readonly Prepare[],
  torn: { position: number; bytes: number; reason: string; opMax: number },
): Promise<void> {
  const sizeBefore = (await stat(segmentFile(dir))).size;
  const report = await verifyDataDir(dir);
  assert.equal(report.ok, true, JSON.stringify(report.problems));
  assert.equal(report.tornTail?.reason, torn.reason);
  assert.ok(report.warnings.some((w) => w.includes('torn tail') && w.includes(`${torn.position}`)));
  assert.equal((await stat(segmentFile(dir))).size, sizeBefore, 'verify is read-only');

  const journal = await Journal.open({ dir, cluster: testCluster });
  const truncated = journal.recovery.truncated;
  assert.ok(truncated !== null);
  assert.equal(truncated.segment, segment0);
  assert.equal(truncated.position, torn.position);
  assert.equal(truncated.bytesTruncated, torn.bytes);
  assert.equal(truncated.reason, torn.reason);
  assert.equal(journal.opMax, torn.opMax);
  assert.equal((await stat(segmentFile(dir))).size, torn.position);
  // Appends continue the chain from the last valid record.
  const kept = prepares.slice(0, torn.opMax);
  const more = makeChain(patternBodies(2, 33), { previous: kept.at(-1) as Prepare });
  for (const prepare of more) await journal.append(prepare);
  await journal.close();
  const reopened = await Journal.open({ dir, cluster: testCluster });
  assert.equal(reopened.recovery.truncated, null);
  const all: Prepare[] = [];
  for await (const prepare of reopened.entries()) all.push(prepare);
  assert.equal(all.length, torn.opMax + 2);
  [...kept, ...more].forEach((p, i) => assert.ok(samePrepare(all[i] as Prepare, p)));
  await reopened.close();
  assert.equal((await verifyDataDir(dir)).warnings.filter((w) => w.includes('torn')).length, 0);
}

describe('journal recovery: torn tails', () => {
  it('truncates a last record cut in half (body runs past end of file)', async () => {
    // Proves body_incomplete: a crash mid-body leaves a short file; open cuts the record off,
    // reports it, and opMax is the previous op; verify warns and stays ok.
    await withTempDir(async (dir) => {
      const prepares = makeChain(patternBodies(10, 300));
      await writeJournal(dir, prepares);
      const last = positionOf(prepares, 10);
      await truncate(segmentFile(dir), last + 230);
      await expectTorn(dir, prepares, {
        position: last,
        bytes: 230,
        reason: 'body_incomplete',
        opMax: 9,
      });
    });
  });

  it('truncates a last record cut inside its header', async () => {
    // Proves header_incomplete: fewer bytes than a header remain at the end.
    await withTempDir(async (dir) => {
      const prepares = makeChain(patternBodies(6, 50));
      await writeJournal(dir, prepares);
      const last = positionOf(prepares, 6);
      await truncate(segmentFile(dir), last + 100);
      await expectTorn(dir, prepares, {
        position: last,
        bytes: 100,
        reason: 'header_incomplete',
        opMax: 5,
      });
    });
  });

  it('truncates a last record whose body tail is zeros from a 4 KiB boundary', async () => {
    // Proves body_torn: the record is complete in length but the page after a 4096-aligned
    // position never reached the disk (zeros), so its body checksum fails: torn, not corrupt.
    await withTempDir(async (dir) => {
      const prepares = makeChain([...patternBodies(3, 100), ...patternBodies(1, 9000)]);
      await writeJournal(dir, prepares);
      const last = positionOf(prepares, 4);
      const end = last + headerSizeBytes + 9000;
      const aligned = Math.ceil((last + 1000) / 4096) * 4096;
      await patch(segmentFile(dir), aligned, new Uint8Array(end - aligned));
      await expectTorn(dir, prepares, {
        position: last,
        bytes: end - last,
        reason: 'body_torn',
        opMax: 3,
      });
    });
  });

  it('keeps zeros after the last record as free space, not a torn tail', async () => {
    // Proves the free-space rule: zeros from the end of the last record to end of file (laid
    // down ahead by the journal, or a file extended whose data never came) are neither cut nor
    // reported, by open or by verify; the next append overwrites them and reads back whole.
    await withTempDir(async (dir) => {
      const prepares = makeChain(patternBodies(4, 70));
      await writeJournal(dir, prepares);
      const end = (await stat(segmentFile(dir))).size;
      await patch(segmentFile(dir), end, new Uint8Array(5000));
      const report = await verifyDataDir(dir);
      assert.equal(report.ok, true, JSON.stringify(report.problems));
      assert.equal(report.tornTail, null);
      assert.deepEqual(
        report.warnings.filter((w) => w.includes('torn')),
        [],
      );
      const journal = await Journal.open({ dir, cluster: testCluster, freeSpace: false });
      assert.equal(journal.recovery.truncated, null);
      assert.equal(journal.opMax, 4);
      assert.equal(journal.sizeBytes, end);
      assert.equal((await stat(segmentFile(dir))).size, end + 5000, 'the zeros stay');
      const more = makeChain(patternBodies(1, 33), { previous: prepares.at(-1) as Prepare });
      await journal.append(more[0] as Prepare);
      await journal.close();
      const reopened = await Journal.open({ dir, cluster: testCluster });
      const all: Prepare[] = [];
      for await (const prepare of reopened.entries()) all.push(prepare);
      [...prepares, ...more].forEach((p, i) => assert.ok(samePrepare(all[i] as Prepare, p)));
      assert.equal(all.length, 5);
      assert.equal(reopened.recovery.truncated, null);
      await reopened.close();
    });
  });

  it('still cuts a torn last record that lies in free space', async () => {
    // Proves the torn-tail rule holds inside free space: a last record whose body tail never
    // reached the disk (zeros from a 4 KiB boundary, then the free space) is body_torn and cut,
    // taking the free space after it with it.
    await withTempDir(async (dir) => {
      const prepares = makeChain([...patternBodies(3, 100), ...patternBodies(1, 9000)]);
      await writeJournal(dir, prepares, undefined, true);
      const last = positionOf(prepares, 4);
      const end = last + headerSizeBytes + 9000;
      const fileSizeBytes = (await stat(segmentFile(dir))).size;
      assert.ok(fileSizeBytes > end, 'the journal laid zeros down after its records');
      const aligned = Math.ceil((last + 1000) / 4096) * 4096;
      await patch(segmentFile(dir), aligned, new Uint8Array(end - aligned));
      const journal = await Journal.open({ dir, cluster: testCluster });
      assert.equal(journal.recovery.truncated?.reason, 'body_torn');
      assert.equal(journal.recovery.truncated?.position, last);
      assert.equal(journal.recovery.truncated?.bytesTruncated, fileSizeBytes - last);
      assert.equal(journal.opMax, 3);
      await journal.close();
    });
  });

  it('truncates a header cut at a page boundary (zeros from inside it to the end)', async () => {
    // Proves header_torn: the last record's header straddles a 4096 boundary and everything from
    // the boundary on is zeros, so the header checksum fails but the write provably stopped.
    await withTempDir(async (dir) => {
      // op 2 starts at 64 + 160 + 3792 = 4016, so its header spans the boundary at 4096.
      const prepares = makeChain([new Uint8Array(3792).fill(7), new Uint8Array(500).fill(9)]);
      await writeJournal(dir, prepares);
      assert.equal(positionOf(prepares, 2), 4016);
      const end = (await stat(segmentFile(dir))).size;
      await patch(segmentFile(dir), 4096, new Uint8Array(end - 4096));
      await expectTorn(dir, prepares, {
        position: 4016,
        bytes: end - 4016,
        reason: 'header_torn',
        opMax: 1,
      });
    });
  });

  it('removes a last segment whose own header never reached the disk', async () => {
    // Proves the torn segment header case: a crash right after creating a segment file leaves
    // it empty or zeroed; open removes it and appends go on in the previous segment.
    await withTempDir(async (dir) => {
      const prepares = makeChain(patternBodies(5, 40));
      await writeJournal(dir, prepares);
      for (const content of [new Uint8Array(0), new Uint8Array(64), new Uint8Array(20)]) {
        await writeFile(segmentFile(dir, '00000001.kjl'), content);
        const report = await verifyDataDir(dir);
        assert.equal(report.ok, true);
        assert.equal(report.tornTail?.segment, '00000001.kjl');
        const journal = await Journal.open({ dir, cluster: testCluster });
        assert.equal(journal.recovery.truncated?.segment, '00000001.kjl');
        assert.match(journal.recovery.truncated?.reason ?? '', /^segment_header_/);
        assert.equal(journal.opMax, 5);
        assert.equal(journal.segmentCount, 1);
        await journal.close();
        assert.deepEqual(await readdir(join(dir, 'journal')), [segment0]);
      }
    });
  });

  it('removes a torn first segment and starts the journal afresh', async () => {
    // Proves the torn segment header rule when the only segment is torn: the journal opens
    // empty, a new first segment is created, and appends work from op 1.
    await withTempDir(async (dir) => {
      await mkdir(join(dir, 'journal'));
      await writeFile(segmentFile(dir), new Uint8Array(40));
      const journal = await Journal.open({ dir, cluster: testCluster });
      assert.equal(journal.recovery.truncated?.reason, 'segment_header_incomplete');
      assert.equal(journal.opMax, 0);
      await journal.append(makeChain(patternBodies(1, 5))[0] as Prepare);
      await journal.close();
      const reopened = await Journal.open({ dir, cluster: testCluster });
      assert.equal(reopened.opMax, 1);
      assert.equal(reopened.recovery.truncated, null);
      await reopened.close();
    });
  });

  it('truncates a torn tail in the last of several segments', async () => {
    // Proves the rule applies to the last segment of many, and earlier segments are untouched.
    await withTempDir(async (dir) => {
      const prepares = makeChain(patternBodies(30, 100));
      await writeJournal(dir, prepares, 1024);
      const files = (await readdir(join(dir, 'journal'))).sort();
      const lastFile = files.at(-1) as string;
      const size = (await stat(segmentFile(dir, lastFile))).size;
      await truncate(segmentFile(dir, lastFile), size - 50);
      const journal = await Journal.open({ dir, cluster: testCluster, segmentSizeBytesMax: 1024 });
      assert.equal(journal.recovery.truncated?.segment, lastFile);
      assert.equal(journal.recovery.truncated?.reason, 'body_incomplete');
      assert.equal(journal.opMax, 29);
      await journal.close();
    });
  });
});

describe('journal recovery: corruption', () => {
  it('refuses a flipped byte in the body of a middle record', async () => {
    // Proves a bad record followed by valid ones is corruption: open throws naming the file,
    // byte position and op, and verify reports the same place.
    await withTempDir(async (dir) => {
      const prepares = makeChain(patternBodies(10, 200));
      await writeJournal(dir, prepares);
      const position = positionOf(prepares, 5);
      await flipByte(segmentFile(dir), position + headerSizeBytes + 17);
      await expectCorrupt(dir, { file: segment0, position, op: 5, says: /body checksum/ });
    });
  });

  it('refuses a flipped byte in the header of a middle record', async () => {
    // Proves a header checksum failure before the tail is corruption; the op reported is the
    // one expected at that position.
    await withTempDir(async (dir) => {
      const prepares = makeChain(patternBodies(10, 200));
      await writeJournal(dir, prepares);
      const position = positionOf(prepares, 4);
      await flipByte(segmentFile(dir), position + 50);
      await expectCorrupt(dir, { file: segment0, position, op: 4, says: /header checksum/ });
    });
  });

  it('refuses a flipped byte in the last, complete record', async () => {
    // Proves that a complete non-zero record with a bad checksum at the tail is NOT a torn
    // write (a crash leaves zeros or missing bytes, not changed ones): body and header cases.
    for (const where of ['body', 'header'] as const) {
      await withTempDir(async (dir) => {
        const prepares = makeChain(patternBodies(6, 120));
        await writeJournal(dir, prepares);
        const position = positionOf(prepares, 6);
        const offset = where === 'body' ? headerSizeBytes + 60 : 70;
        await flipByte(segmentFile(dir), position + offset);
        const says = where === 'body' ? /body checksum/ : /header checksum/;
        await expectCorrupt(dir, { file: segment0, position, op: 6, says });
      });
    }
  });

  it('refuses a zeroed header followed by a valid record', async () => {
    // Proves that zeros are only a torn tail when nothing valid follows them.
    await withTempDir(async (dir) => {
      const prepares = makeChain(patternBodies(6, 120));
      await writeJournal(dir, prepares);
      const position = positionOf(prepares, 5);
      await patch(segmentFile(dir), position, new Uint8Array(headerSizeBytes));
      await expectCorrupt(dir, { file: segment0, position, op: 5, says: /all zeros/ });
    });
  });

  it('refuses a damaged record in a non-final segment, even a cut one', async () => {
    // Proves that the torn-tail rule applies to the last segment only: a short first segment
    // of three is corruption.
    await withTempDir(async (dir) => {
      const prepares = makeChain(patternBodies(20, 100));
      await writeJournal(dir, prepares, 1024);
      const size = (await stat(segmentFile(dir))).size;
      await truncate(segmentFile(dir), size - 40);
      const lastPosition = size - (headerSizeBytes + 100);
      await expectCorrupt(dir, {
        file: segment0,
        position: lastPosition,
        op: null,
        says: /past the end/,
      });
    });
  });

  it('refuses a valid record whose parent is not the previous record (chain break)', async () => {
    // Proves the hash chain is checked: a record with sound checksums but a wrong parent is
    // corruption, at the tail and in the middle.
    await withTempDir(async (dir) => {
      const prepares = makeChain(patternBodies(4, 30));
      await writeJournal(dir, prepares);
      const forged = makeChain(patternBodies(1, 30), { previous: prepares[2] as Prepare })[0];
      const wrongParent = makePrepare(
        { ...(forged as Prepare).header, op: asOp(5) },
        (forged as Prepare).body,
      );
      await appendRaw(segmentFile(dir), wrongParent);
      await appendRaw(
        segmentFile(dir),
        makeChain(patternBodies(1, 8), { previous: wrongParent })[0] as Prepare,
      );
      const position = positionOf([...prepares, wrongParent], 5);
      await expectCorrupt(dir, { file: segment0, position, op: 5, says: /hash chain broken/ });
    });
  });

  it('refuses an op gap and a record of another cluster', async () => {
    // Proves op contiguity and the cluster id are checked on every record.
    await withTempDir(async (dir) => {
      const prepares = makeChain(patternBodies(6, 30));
      await writeJournal(dir, prepares.slice(0, 4));
      const skipping = makePrepare(
        {
          ...(prepares[5] as Prepare).header,
          parent: prepares[3]?.header.checksum ?? new Uint8Array(32),
        },
        new Uint8Array(4),
      );
      await appendRaw(segmentFile(dir), skipping);
      await expectCorrupt(dir, {
        file: segment0,
        position: positionOf(prepares, 5),
        op: 6,
        says: /op 6 where op 5 must come next/,
      });
    });
    await withTempDir(async (dir) => {
      await writeJournal(dir, makeChain(patternBodies(3, 30)));
      await assert.rejects(Journal.open({ dir, cluster: testCluster + 1 }), (error: unknown) => {
        assert.ok(error instanceof KmbError);
        assert.equal(error.code, errorCodes.storage_corrupt);
        assert.match(error.message, /cluster/);
        return true;
      });
    });
  });

  it('refuses a segment file under the wrong name', async () => {
    // Proves the segment header's index is checked against the file name (a misplaced or
    // copied file is corruption, even when its records happen to be valid elsewhere).
    await withTempDir(async (dir) => {
      await writeJournal(dir, makeChain(patternBodies(30, 100)), 1024);
      await copyFile(segmentFile(dir, '00000001.kjl'), segmentFile(dir, '00000002.kjl'));
      await expectCorrupt(dir, {
        file: '00000002.kjl',
        position: 0,
        op: null,
        says: /header says index 1, the file name says 2/,
      });
    });
  });

  it('refuses a missing segment in the middle', async () => {
    // Proves segments must be contiguous from 0: a deleted middle segment is corruption.
    await withTempDir(async (dir) => {
      await writeJournal(dir, makeChain(patternBodies(30, 100)), 1024);
      await unlink(segmentFile(dir, '00000001.kjl'));
      await assert.rejects(Journal.open({ dir, cluster: testCluster }), (error: unknown) => {
        assert.ok(error instanceof KmbError);
        assert.equal(error.code, errorCodes.storage_corrupt);
        assert.match(error.message, /00000001\.kjl at byte 0: segment file is missing/);
        return true;
      });
      const report = await verifyDataDir(dir);
      assert.equal(report.ok, false);
      const missing = report.problems.filter((p) => p.segment === '00000001.kjl');
      assert.equal(missing.length, 1);
      assert.match(missing[0]?.problem ?? '', /missing/);
    });
  });
});

describe('journal recovery: cutting at corruption (replicas with peers)', () => {
  it('cuts at the first bad record, drops later segments, and appends continue', async () => {
    // Proves onCorruption 'cut': the journal keeps exactly the ops before the bad record (in
    // several segments, removing the later ones), reports the cut with reason 'corruption' and
    // the op, verifies clean afterwards, and accepts the cut ops again with their checksums.
    await withTempDir(async (dir) => {
      const prepares = makeChain(patternBodies(30, 200));
      const segmentSizeBytesMax = segmentHeaderSizeBytes + 5 * (headerSizeBytes + 200);
      await writeJournal(dir, prepares, segmentSizeBytesMax);
      // Op 8 is the third record of the second segment (5 records per segment).
      const second = segmentFile(dir, '00000001.kjl');
      const position = segmentHeaderSizeBytes + 2 * (headerSizeBytes + 200);
      await flipByte(second, position + headerSizeBytes + 9);
      await assert.rejects(Journal.open({ dir, cluster: testCluster, segmentSizeBytesMax }));
      const journal = await Journal.open({
        dir,
        cluster: testCluster,
        segmentSizeBytesMax,
        onCorruption: 'cut',
      });
      assert.equal(journal.opMax, 7);
      assert.equal(journal.recovery.truncated?.reason, 'corruption');
      assert.equal(journal.recovery.truncated?.op, 8);
      assert.equal(journal.recovery.truncated?.position, position);
      for (const prepare of prepares.slice(7)) await journal.append(prepare);
      await journal.close();
      const report = await verifyDataDir(dir);
      assert.equal(report.ok, true, JSON.stringify(report.problems));
      assert.equal(report.opMax, 30);
    });
  });
});

/** Every file under the journal directory with its size (to show a refusal changed nothing). */
async function journalFiles(dir: string): Promise<Record<string, number>> {
  const files: Record<string, number> = {};
  const names = await readdir(join(dir, 'journal')).catch(() => null);
  if (names === null) return files;
  for (const name of names) files[name] = (await stat(join(dir, 'journal', name))).size;
  return files;
}

/** Opening with `commitFloor` refuses with verify's words for the same damage, changing nothing. */
async function expectBelowFloor(dir: string, commitFloor: number, opMax: number): Promise<void> {
  const superblock = await Superblock.open(dir);
  await superblock?.write({ commit: asOp(commitFloor) });
  const before = await journalFiles(dir);
  const problem = commitBeyondJournalProblem(commitFloor, opMax);
  assert.ok(problem !== null);
  await assert.rejects(Journal.open({ dir, cluster: testCluster, commitFloor }), (error) => {
    assert.ok(error instanceof CommittedRecordsMissingError);
    assert.equal(error.code, errorCodes.storage_corrupt);
    assert.equal(error.superblockCommit, commitFloor);
    assert.equal(error.journalOpMax, opMax);
    assert.ok(error.message.includes(problem), error.message);
    assert.match(error.message, /backup/);
    assert.ok(error.message.includes(`kimberlite-admin verify --data-dir ${dir}`));
    return true;
  });
  assert.deepEqual(await journalFiles(dir), before, 'the refusal changed nothing');
  const report = await verifyDataDir(dir);
  assert.deepEqual(
    report.problems.map((p) => p.problem),
    [problem],
    'verify reports the same problem',
  );
}

describe('journal recovery: the commit floor (the superblock commit)', () => {
  it('refuses a journal whose last segment was deleted or cut to its header', async () => {
    // Proves that records missing below the superblock's commit are never taken for a clean end:
    // a 30-op journal in several segments loses its last segment (deleted, or cut to its 64-byte
    // header); Journal.open with commitFloor 30 refuses with CommittedRecordsMissingError whose
    // message holds verify's exact problem, and changes no file. With 'cut' (a replica with
    // peers) the same journal opens as it is, at the last op it holds.
    await withTempDir(async (dir) => {
      const prepares = makeChain(patternBodies(30, 100));
      await writeJournal(dir, prepares, 1024);
      const lastSegment = (await verifyDataDir(dir)).segments.at(-1);
      assert.ok(lastSegment !== undefined && lastSegment.opFirst !== null);
      const lastFile = lastSegment.name;
      const opMax = lastSegment.opFirst - 1;
      await truncate(segmentFile(dir, lastFile), segmentHeaderSizeBytes);
      await expectBelowFloor(dir, 30, opMax);
      await unlink(segmentFile(dir, lastFile));
      await expectBelowFloor(dir, 30, opMax);
      const cut = await Journal.open({
        dir,
        cluster: testCluster,
        commitFloor: 30,
        onCorruption: 'cut',
      });
      assert.equal(cut.opMax, opMax);
      await cut.close();
    });
  });

  it('leaves a torn tail below the floor in place and refuses; above it, cuts as before', async () => {
    // Proves a torn tail is only a torn tail above the commit: the last of 5 records cut in half
    // with commitFloor 5 is refused without truncating the file (nothing acknowledged may be cut);
    // a torn segment header after op 5 with floor 6 is refused without removing the file; with
    // floor 4, the same torn record is cut as an unfinished write.
    await withTempDir(async (dir) => {
      const prepares = makeChain(patternBodies(5, 40));
      await writeJournal(dir, prepares);
      await writeFile(segmentFile(dir, '00000001.kjl'), new Uint8Array(20));
      await expectBelowFloor(dir, 6, 5);
      await unlink(segmentFile(dir, '00000001.kjl'));
      const end = positionOf(prepares, 6);
      await truncate(segmentFile(dir), end - 20);
      const journal = await Journal.open({ dir, cluster: testCluster, commitFloor: 4 });
      assert.equal(journal.recovery.truncated?.reason, 'body_incomplete');
      assert.equal(journal.opMax, 4);
      await journal.close();
    });
  });

  it('refuses a torn last record at the floor without cutting it', async () => {
    // Proves the check runs before the cut: the torn record is op 5, the floor is 5.
    await withTempDir(async (dir) => {
      const prepares = makeChain(patternBodies(5, 40));
      await writeJournal(dir, prepares);
      await truncate(segmentFile(dir), positionOf(prepares, 6) - 20);
      await assert.rejects(
        Journal.open({ dir, cluster: testCluster, commitFloor: 5 }),
        CommittedRecordsMissingError,
      );
      assert.equal((await stat(segmentFile(dir))).size, positionOf(prepares, 6) - 20);
    });
  });

  it('refuses a missing journal directory above floor 0, creating nothing', async () => {
    // Proves the journal directory is not re-created over lost records: with commitFloor 3 and
    // no journal directory, open refuses and creates nothing; with floor 0 (nothing committed)
    // it creates the directory and the first segment as for a fresh data directory.
    await withTempDir(async (dir) => {
      await writeJournal(dir, makeChain(patternBodies(3, 10)));
      await rm(join(dir, 'journal'), { recursive: true });
      await assert.rejects(
        Journal.open({ dir, cluster: testCluster, commitFloor: 3 }),
        CommittedRecordsMissingError,
      );
      assert.deepEqual(await readdir(dir), ['superblock.kmb']);
      const fresh = await Journal.open({ dir, cluster: testCluster, commitFloor: 0 });
      assert.equal(fresh.opMax, 0);
      await fresh.close();
    });
  });
});
