// Tests of the journal's normal life: append, reopen, read back, segments, group commit, the
// write → datasync → resolve order, what happens when a datasync fails, and how a full disk
// (ENOSPC, EDQUOT) pauses appends instead of failing them.

import assert from 'node:assert/strict';
import { readFile, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';

import fc from 'fast-check';

import { AssertionError } from '../core/assert.js';
import { checksumEqual } from '../core/checksum.js';
import { errorCodes, KmbError } from '../core/errors.js';
import { headerSizeBytes, rootPrepare } from '../core/header.js';
import type { Prepare } from '../core/header.js';
import { realFileIO } from './file_io.js';
import { Journal, freeSpaceChunkBytes } from './journal.js';
import { RecordingFileIO } from './recording_file_io.js';
import { segmentFileSuffix, segmentHeaderSizeBytes } from './segment_header.js';
import { makeChain, patternBodies, samePrepare, testCluster, withTempDir } from './test_support.js';

async function readAllEntries(journal: Journal, fromOp = 1, toOp?: number): Promise<Prepare[]> {
  const prepares: Prepare[] = [];
  for await (const prepare of journal.entries(fromOp, toOp ?? journal.opMax)) {
    prepares.push(prepare);
  }
  return prepares;
}

function assertSameChain(actual: readonly Prepare[], expected: readonly Prepare[]): void {
  assert.equal(actual.length, expected.length);
  actual.forEach((prepare, index) => {
    const wanted = expected[index];
    assert.ok(wanted !== undefined && samePrepare(prepare, wanted), `op ${index + 1} differs`);
  });
}

/** The segment a journal's index places `op` in (the test looks inside on purpose). */
function segmentOf(journal: Journal, op: number): number {
  const internals = journal as unknown as { index: { locate(op: number): { segment: number } } };
  return internals.index.locate(op).segment;
}

describe('journal', () => {
  it('reads back every appended record, identical, before and after reopening', async () => {
    // Proves durability of content: records appended, then read by op and by entries() both
    // from the live journal and from a reopened one, match byte for byte.
    await withTempDir(async (dir) => {
      const prepares = makeChain(patternBodies(40, 100));
      const journal = await Journal.open({ dir, cluster: testCluster });
      assert.equal(journal.opMax, 0);
      assert.ok(checksumEqual(journal.headChecksum, rootPrepare(testCluster).header.checksum));
      for (const prepare of prepares) await journal.append(prepare);
      assertSameChain(await readAllEntries(journal), prepares);
      await journal.close();

      const reopened = await Journal.open({ dir, cluster: testCluster });
      assert.equal(reopened.opMax, 40);
      assert.equal(reopened.durableOpMax, 40);
      assert.equal(reopened.recovery.recordCount, 40);
      assert.equal(reopened.recovery.truncated, null);
      assert.ok(
        checksumEqual(reopened.headChecksum, prepares[39]?.header.checksum ?? new Uint8Array()),
      );
      for (const prepare of prepares) {
        assert.ok(samePrepare(await reopened.read(prepare.header.op), prepare));
      }
      assertSameChain(await readAllEntries(reopened), prepares);
      assertSameChain(await readAllEntries(reopened, 10, 20), prepares.slice(9, 20));
      await reopened.close();
    });
  });

  it('rolls over tiny segments and reads across them after reopening', async () => {
    // Proves the segment rule: with a 1 KiB limit, records spread over many segment files,
    // none exceeds the limit, and the chain reads back whole across segment boundaries.
    await withTempDir(async (dir) => {
      const segmentSizeBytesMax = 1024;
      const bodies = Array.from(
        { length: 60 },
        (_, i) => patternBodies(1, 50 + ((i * 37) % 250))[0],
      );
      const prepares = makeChain(bodies.map((body) => body ?? new Uint8Array(0)));
      const journal = await Journal.open({ dir, cluster: testCluster, segmentSizeBytesMax });
      await Promise.all(prepares.map((prepare) => journal.append(prepare)));
      assert.ok(journal.segmentCount > 5, `segments: ${journal.segmentCount}`);
      await journal.close();

      const files = (await readdir(join(dir, 'journal'))).sort();
      assert.equal(files.length, journal.segmentCount);
      let closedBytes = 0;
      for (const file of files) {
        const sizeBytes = (await stat(join(dir, 'journal', file))).size;
        assert.ok(sizeBytes <= segmentSizeBytesMax, `${file} is ${sizeBytes} bytes`);
        if (file !== files.at(-1)) closedBytes += sizeBytes;
      }
      // Full segments were cut back to their records; only the last may end in free space.
      const last = await readFile(join(dir, 'journal', files.at(-1) ?? ''));
      const tailBytes = journal.sizeBytes - closedBytes;
      assert.ok(last.length >= tailBytes);
      assert.ok(
        last.subarray(tailBytes).every((byte) => byte === 0),
        'free space is zeros',
      );

      const reopened = await Journal.open({ dir, cluster: testCluster, segmentSizeBytesMax });
      assert.equal(reopened.segmentCount, files.length);
      assert.equal(reopened.sizeBytes, journal.sizeBytes);
      assert.equal(reopened.recovery.truncated, null);
      assertSameChain(await readAllEntries(reopened), prepares);
      assert.ok(samePrepare(await reopened.read(33), prepares[32] as Prepare));
      await reopened.close();
    });
  });

  it('puts a record larger than the segment limit alone in its own segment', async () => {
    // Proves the "at least one record per segment" rule: an oversized record is not refused
    // and is not split; it starts a fresh segment and the next record starts another.
    await withTempDir(async (dir) => {
      const prepares = makeChain([new Uint8Array(10), new Uint8Array(2000), new Uint8Array(10)]);
      const journal = await Journal.open({ dir, cluster: testCluster, segmentSizeBytesMax: 512 });
      for (const prepare of prepares) await journal.append(prepare);
      assert.equal(journal.segmentCount, 3);
      await journal.close();
      const reopened = await Journal.open({ dir, cluster: testCluster, segmentSizeBytesMax: 512 });
      assertSameChain(await readAllEntries(reopened), prepares);
      await reopened.close();
    });
  });

  it('round-trips random bodies, batches and segment sizes (property)', async () => {
    // Proves, over random inputs, that whatever the body sizes, the segment limit and the way
    // appends are grouped (awaited one by one or fired together), reopening yields the same
    // chain, and appends then continue the chain.
    const body = fc.uint8Array({ minLength: 0, maxLength: 700 });
    await fc.assert(
      fc.asyncProperty(
        fc.array(body, { minLength: 1, maxLength: 40 }),
        fc.integer({ min: segmentHeaderSizeBytes + headerSizeBytes, max: 4096 }),
        fc.array(fc.integer({ min: 1, max: 8 }), { minLength: 1, maxLength: 10 }),
        async (bodies, segmentSizeBytesMax, groupSizes) => {
          await withTempDir(async (dir) => {
            const prepares = makeChain(bodies);
            const open = (): Promise<Journal> =>
              Journal.open({ dir, cluster: testCluster, segmentSizeBytesMax });
            const journal = await open();
            let next = 0;
            for (let group = 0; next < prepares.length; group++) {
              const size = groupSizes[group % groupSizes.length] ?? 1;
              const batch = prepares.slice(next, next + size);
              await Promise.all(batch.map((prepare) => journal.append(prepare)));
              next += batch.length;
            }
            await journal.close();
            const reopened = await open();
            assert.equal(reopened.recovery.truncated, null);
            assertSameChain(await readAllEntries(reopened), prepares);
            const more = makeChain([new Uint8Array([1, 2, 3])], {
              previous: prepares.at(-1) as Prepare,
            });
            await reopened.append(more[0] as Prepare);
            await reopened.close();
            const again = await open();
            assertSameChain(await readAllEntries(again), [...prepares, ...more]);
            await again.close();
          });
        },
      ),
      { numRuns: 40 },
    );
  });

  it('group commit: many concurrent appends share far fewer datasyncs', async () => {
    // Proves group commit: 400 appends fired together complete with a handful of write+datasync
    // rounds, counted both by the journal's counters and by the recording FileIO.
    await withTempDir(async (dir) => {
      const io = new RecordingFileIO(realFileIO);
      const journal = await Journal.open({ dir, cluster: testCluster, io });
      io.clear();
      const syncsBefore = journal.counters.syncs;
      const prepares = makeChain(patternBodies(400, 64));
      await Promise.all(prepares.map((prepare) => journal.append(prepare)));
      const datasyncs = io.count('datasync');
      assert.ok(datasyncs >= 1 && datasyncs <= 10, `datasyncs: ${datasyncs}`);
      assert.equal(journal.counters.syncs - syncsBefore, datasyncs);
      assert.equal(journal.counters.appends, 400);
      assert.ok(journal.counters.writes <= 10);
      assert.equal(journal.durableOpMax, 400);
      await journal.close();
    });
  });

  it('resolves each append only after a datasync that follows its write', async () => {
    // Proves the durability order with a recording FileIO: for every op, the log holds a write
    // covering the op's bytes, then a datasync of that file started after the write and ended,
    // then the append's resolution — never the resolution first. Appends arrive in waves while
    // a flush is in flight, across tiny segments so that rollover is covered too.
    await withTempDir(async (dir) => {
      const io = new RecordingFileIO(realFileIO);
      const journal = await Journal.open({
        dir,
        cluster: testCluster,
        io,
        segmentSizeBytesMax: 2048,
      });
      io.clear();
      const prepares = makeChain(patternBodies(120, 90));
      const sites: { path: string; start: number; end: number }[] = [];
      const pending: Promise<void>[] = [];
      for (const [index, prepare] of prepares.entries()) {
        pending.push(journal.append(prepare).then(() => io.mark(`resolved ${index + 1}`)));
        if (index % 17 === 0) await new Promise((resolve) => setImmediate(resolve));
      }
      await Promise.all(pending);
      await journal.close();
      // Where each op landed: recompute from the write events in order.
      for (const event of io.events) {
        if (event.kind !== 'write' || event.position === 0 || event.detail === 'zeros') continue;
        let position = event.position ?? 0;
        const end = position + (event.sizeBytes ?? 0);
        while (position < end) {
          const op = sites.length + 1;
          const sizeBytes = headerSizeBytes + (prepares[op - 1]?.body.length ?? 0);
          sites.push({ path: event.path, start: position, end: position + sizeBytes });
          position += sizeBytes;
        }
      }
      assert.equal(sites.length, prepares.length);
      for (let op = 1; op <= prepares.length; op++) assertOrdered(io, op, sites[op - 1]);
    });
  });

  it('lays zeros down ahead and writes records into them only once they are durable', async () => {
    // Proves the free-space rule with a recording FileIO: zeros are written ahead of the records
    // in chunks; every record write that lands in a zeroed range comes after the datasync that
    // made those zeros durable returned; the file ends in zeros after the last record; and the
    // journal reopens to the same records with nothing reported as torn.
    await withTempDir(async (dir) => {
      const io = new RecordingFileIO(realFileIO);
      const journal = await Journal.open({ dir, cluster: testCluster, io });
      const prepares = makeChain(patternBodies(2600, 1000));
      const pending: Promise<void>[] = [];
      for (const [index, prepare] of prepares.entries()) {
        pending.push(journal.append(prepare));
        if (index % 50 === 0) await new Promise((resolve) => setImmediate(resolve));
      }
      await Promise.all(pending);
      const logicalBytes = journal.sizeBytes;
      assert.ok(journal.counters.freeSpaceBytesWritten >= 2 * freeSpaceChunkBytes);
      await journal.close();
      const events = io.events;
      const zeroed: { start: number; end: number; durableAt: number }[] = [];
      for (const [at, event] of events.entries()) {
        if (event.kind !== 'write' || event.detail !== 'zeros') continue;
        const durableAt = events.findIndex((e, i) => i > at && e.kind === 'datasync');
        assert.ok(durableAt > at, 'zeros are datasynced');
        const start = event.position ?? 0;
        zeroed.push({ start, end: start + (event.sizeBytes ?? 0), durableAt });
      }
      assert.ok(zeroed.length >= 4, `${zeroed.length} zero writes`);
      let intoZeros = 0;
      for (const [at, event] of events.entries()) {
        if (event.kind !== 'write' || event.detail === 'zeros' || event.position === 0) continue;
        const start = event.position ?? 0;
        const end = start + (event.sizeBytes ?? 0);
        for (const range of zeroed.filter((r) => r.start < end && start < r.end)) {
          intoZeros += 1;
          assert.ok(at > range.durableAt, `a record write at ${start} waited for its zeros`);
        }
      }
      assert.ok(intoZeros >= 5, `${intoZeros} record writes went into laid-down zeros`);
      const file = await readFile(join(dir, 'journal', '00000000.kjl'));
      assert.ok(file.length > logicalBytes, 'the file ends in free space');
      assert.ok(file.subarray(logicalBytes).every((byte) => byte === 0));
      const reopened = await Journal.open({ dir, cluster: testCluster });
      assert.equal(reopened.recovery.truncated, null);
      assert.equal(reopened.sizeBytes, logicalBytes);
      assertSameChain(await readAllEntries(reopened), prepares);
      await reopened.close();
    });
  });

  it('goes on without free space when laying zeros down fails (a full disk)', async () => {
    // Proves a failure to lay zeros down is not a journal failure: with every all-zero write
    // refused (ENOSPC), every append still resolves, the error is reported once, no free space
    // is counted, and the journal reopens whole with nothing cut.
    await withTempDir(async (dir) => {
      const io = new RecordingFileIO(realFileIO);
      const errors: unknown[] = [];
      const noSpace = Object.assign(new Error('ENOSPC: no space left on device'), {
        code: 'ENOSPC',
      });
      io.faults.write = (_path, buffers) =>
        buffers.every((buffer) => buffer.every((byte) => byte === 0)) ? noSpace : undefined;
      const journal = await Journal.open({
        dir,
        cluster: testCluster,
        io,
        onFreeSpaceError: (error) => errors.push(error),
      });
      const prepares = makeChain(patternBodies(600, 5000));
      for (const prepare of prepares) await journal.append(prepare);
      assert.equal(journal.failed, false);
      assert.equal(errors.length, 1);
      assert.equal(journal.freeSpaceBytes, 0);
      assert.equal(journal.counters.freeSpaceBytesWritten, 0);
      await journal.close();
      const reopened = await Journal.open({ dir, cluster: testCluster });
      assert.equal(reopened.recovery.truncated, null);
      assertSameChain(await readAllEntries(reopened), prepares);
      await reopened.close();
    });
  });

  it('cuts a full segment back to its records even when its zeros never became durable', async () => {
    // Proves the roll rule survives a failed datasync of zeros (the zeros reached the file, but
    // the journal never counted them): the full segment is still cut back to its records, so
    // reopening finds no zeros in a segment before the last (which would be corruption).
    await withTempDir(async (dir) => {
      const io = new RecordingFileIO(realFileIO);
      let lastWriteWasZeros = false;
      io.faults.write = (_path, buffers) => {
        lastWriteWasZeros = buffers.every((buffer) => buffer.every((byte) => byte === 0));
        return undefined;
      };
      io.faults.datasync = () =>
        lastWriteWasZeros ? new Error('EIO: datasync failed') : undefined;
      const errors: unknown[] = [];
      const segmentSizeBytesMax = 8192;
      const journal = await Journal.open({
        dir,
        cluster: testCluster,
        io,
        segmentSizeBytesMax,
        onFreeSpaceError: (error) => errors.push(error),
      });
      const prepares = makeChain(patternBodies(60, 400));
      for (const prepare of prepares) await journal.append(prepare);
      assert.equal(errors.length, 1);
      assert.ok(journal.segmentCount > 2);
      await journal.close();
      const reopened = await Journal.open({ dir, cluster: testCluster, segmentSizeBytesMax });
      assert.equal(reopened.recovery.truncated, null);
      assertSameChain(await readAllEntries(reopened), prepares);
      await reopened.close();
    });
  });

  it('scans at open and replays with entries() in large chunks, not per record', async () => {
    // Proves the start-up path is batch-friendly: 3000 records are scanned by open() and read
    // back by entries() with a handful of read calls each (the recording FileIO counts them).
    await withTempDir(async (dir) => {
      const prepares = makeChain(patternBodies(3000, 50));
      await appendAndClose(dir, prepares);
      const io = new RecordingFileIO(realFileIO);
      const journal = await Journal.open({ dir, cluster: testCluster, io });
      assert.ok(io.count('read') <= 3, `open reads: ${io.count('read')}`);
      io.clear();
      const entries = await readAllEntries(journal);
      assert.equal(entries.length, 3000);
      assert.ok(io.count('read') <= 3, `entries reads: ${io.count('read')}`);
      await journal.close();
    });
  });

  it('serves appended but not yet durable records from memory', async () => {
    // Proves that read() and entries() see every op up to opMax at once (before the datasync
    // completes) and that opMax and headChecksum move synchronously in append().
    await withTempDir(async (dir) => {
      const journal = await Journal.open({ dir, cluster: testCluster });
      const prepares = makeChain(patternBodies(5, 20));
      const pending = prepares.map((prepare) => journal.append(prepare));
      assert.equal(journal.opMax, 5);
      assert.equal(journal.durableOpMax, 0);
      assert.equal(journal.pendingCount, 5);
      assert.ok(
        checksumEqual(journal.headChecksum, prepares[4]?.header.checksum ?? new Uint8Array()),
      );
      assert.ok(samePrepare(await journal.read(3), prepares[2] as Prepare));
      assertSameChain(await readAllEntries(journal), prepares);
      await Promise.all(pending);
      assert.equal(journal.durableOpMax, 5);
      await journal.close();
    });
  });

  it('close waits for pending appends', async () => {
    // Proves close() does not abandon queued appends: every append fired before close resolves,
    // and a reopen finds them all.
    await withTempDir(async (dir) => {
      const journal = await Journal.open({ dir, cluster: testCluster });
      const prepares = makeChain(patternBodies(50, 30));
      let resolved = 0;
      for (const prepare of prepares) void journal.append(prepare).then(() => (resolved += 1));
      await journal.close();
      await new Promise((resolve) => setImmediate(resolve));
      assert.equal(resolved, 50);
      const reopened = await Journal.open({ dir, cluster: testCluster });
      assert.equal(reopened.opMax, 50);
      await reopened.close();
    });
  });

  it('asserts on appends that break the chain (programmer errors)', async () => {
    // Proves append() refuses, by assertion, an op out of sequence, a wrong parent and a wrong
    // cluster, without changing opMax.
    await withTempDir(async (dir) => {
      const journal = await Journal.open({ dir, cluster: testCluster });
      const prepares = makeChain(patternBodies(3, 10));
      assert.throws(() => void journal.append(prepares[1] as Prepare), AssertionError);
      const otherCluster = makeChain(patternBodies(1, 10), { cluster: testCluster + 1 });
      assert.throws(() => void journal.append(otherCluster[0] as Prepare), AssertionError);
      const forked = makeChain(patternBodies(1, 11), { previous: prepares[0] as Prepare });
      await journal.append(prepares[0] as Prepare);
      await journal.append(prepares[1] as Prepare);
      assert.throws(() => void journal.append(forked[0] as Prepare), AssertionError);
      assert.equal(journal.opMax, 2);
      await journal.close();
    });
  });

  it('a failed datasync rejects pending appends (KMB_ERR_STORAGE_IO), then refuses', async () => {
    // Proves the fsync-failure rule: when a datasync fails, every append waiting on it rejects
    // with KMB_ERR_STORAGE_IO, later appends are refused with the same code, and the failed
    // datasync is never retried (no datasync is issued after the failure).
    await withTempDir(async (dir) => {
      const io = new RecordingFileIO(realFileIO);
      const journal = await Journal.open({ dir, cluster: testCluster, io });
      const prepares = makeChain(patternBodies(30, 40));
      await journal.append(prepares[0] as Prepare);
      io.faults.datasync = () => new Error('EIO: simulated datasync failure');
      io.clear();
      const results = await Promise.allSettled(prepares.slice(1, 20).map((p) => journal.append(p)));
      for (const result of results) {
        assert.equal(result.status, 'rejected');
        assert.ok(result.reason instanceof KmbError);
        assert.equal(result.reason.code, errorCodes.storage_io);
      }
      assert.equal(journal.failed, true);
      assert.equal(journal.durableOpMax, 1);
      const startsAfterFailure = io.count('datasync_start');
      io.faults = {};
      await assert.rejects(journal.append(prepares[20] as Prepare), {
        code: errorCodes.storage_io,
      });
      assert.equal(io.count('datasync_start'), startsAfterFailure);
      await journal.close();
    });
  });

  it('rejects pending appends when a write fails', async () => {
    // Proves the same rule for a failing write: the batch rejects with KMB_ERR_STORAGE_IO and
    // the journal refuses further appends.
    await withTempDir(async (dir) => {
      const io = new RecordingFileIO(realFileIO);
      const journal = await Journal.open({ dir, cluster: testCluster, io });
      const prepares = makeChain(patternBodies(3, 40));
      io.faults.write = () => errnoError('EIO', 'simulated write failure');
      await assert.rejects(journal.append(prepares[0] as Prepare), { code: errorCodes.storage_io });
      io.faults = {};
      await assert.rejects(journal.append(prepares[1] as Prepare), { code: errorCodes.storage_io });
      await journal.close();
    });
  });
});

function assertOrdered(
  io: RecordingFileIO,
  op: number,
  site: { path: string; start: number; end: number } | undefined,
): void {
  assert.ok(site !== undefined);
  const events = io.events;
  const resolvedAt = events.findIndex((e) => e.kind === 'mark' && e.detail === `resolved ${op}`);
  assert.ok(resolvedAt >= 0, `op ${op} resolved`);
  const writtenAt = events.findIndex(
    (e) =>
      e.kind === 'write' &&
      e.detail !== 'zeros' &&
      e.path === site.path &&
      (e.position ?? 0) <= site.start &&
      (e.position ?? 0) + (e.sizeBytes ?? 0) >= site.end,
  );
  assert.ok(writtenAt >= 0 && writtenAt < resolvedAt, `op ${op} written before it resolved`);
  const syncStartAt = events.findIndex(
    (e, i) => i > writtenAt && e.kind === 'datasync_start' && e.path === site.path,
  );
  assert.ok(syncStartAt > writtenAt, `op ${op}: a datasync starts after its write`);
  const syncEndAt = events.findIndex(
    (e, i) => i > syncStartAt && e.kind === 'datasync' && e.path === site.path,
  );
  assert.ok(syncEndAt > 0 && syncEndAt < resolvedAt, `op ${op}: resolved after its datasync`);
}

async function appendAndClose(dir: string, prepares: readonly Prepare[]): Promise<void> {
  const journal = await Journal.open({ dir, cluster: testCluster });
  await Promise.all(prepares.map((prepare) => journal.append(prepare)));
  await journal.close();
}

describe('journal truncation', () => {
  it('cuts uncommitted records within a segment, durably, and appends continue from the cut', async () => {
    // Proves truncate(opMax): records after opMax are gone (from memory and after reopening),
    // the head checksum is op opMax's, the cut is datasynced, and a different chain can be
    // appended from there (a view change replacing uncommitted ops).
    await withTempDir(async (dir) => {
      const io = new RecordingFileIO(realFileIO);
      const prepares = makeChain(patternBodies(10, 64));
      const journal = await Journal.open({ dir, cluster: testCluster, io });
      for (const prepare of prepares) await journal.append(prepare);
      const syncsBefore = journal.counters.syncs;
      await journal.truncate(6, { commitFloor: 4 });
      assert.equal(journal.opMax, 6);
      assert.equal(journal.durableOpMax, 6);
      assert.ok(journal.counters.syncs > syncsBefore, 'the cut is synced');
      assert.ok(
        checksumEqual(journal.headChecksum, prepares[5]?.header.checksum ?? new Uint8Array()),
      );
      const branch = makeChain(patternBodies(3, 99), { previous: prepares[5] as Prepare });
      for (const prepare of branch) await journal.append(prepare);
      const expected = [...prepares.slice(0, 6), ...branch];
      assertSameChain(await readAllEntries(journal), expected);
      await journal.close();
      const reopened = await Journal.open({ dir, cluster: testCluster });
      assert.equal(reopened.opMax, 9);
      assert.equal(reopened.recovery.truncated, null);
      assertSameChain(await readAllEntries(reopened), expected);
      await reopened.close();
    });
  });

  it('removes whole segments when the cut lies in an earlier one, and can cut to op 0', async () => {
    // Proves truncation across segment files: later segments are removed, the directory stays
    // contiguous, sizes add up, a reopened journal agrees, and cutting to 0 leaves an empty log.
    await withTempDir(async (dir) => {
      const segmentSizeBytesMax = 1024;
      const prepares = makeChain(patternBodies(40, 200));
      const journal = await Journal.open({ dir, cluster: testCluster, segmentSizeBytesMax });
      for (const prepare of prepares) await journal.append(prepare);
      const segmentsBefore = journal.segmentCount;
      assert.ok(segmentsBefore > 5);
      // A read from the first segment the cut removes leaves a read handle on it cached; after
      // the cut a new file of that name holds other records, and reads must return those.
      const removed = segmentOf(journal, 7) + 1;
      const cachedOp = prepares.findIndex((p) => segmentOf(journal, p.header.op) === removed) + 1;
      assert.ok(samePrepare(await journal.read(cachedOp), prepares[cachedOp - 1] as Prepare));
      await journal.truncate(7, { commitFloor: 0 });
      assert.ok(journal.segmentCount < segmentsBefore);
      const files = (await readdir(join(dir, 'journal'))).filter((n) => n.endsWith('.kjl'));
      assert.equal(files.length, journal.segmentCount);
      let onDisk = 0;
      for (const name of files) onDisk += (await stat(join(dir, 'journal', name))).size;
      assert.equal(journal.sizeBytes, onDisk);
      const more = makeChain(patternBodies(20, 150), { previous: prepares[6] as Prepare });
      for (const prepare of more) await journal.append(prepare);
      // The recreated segment first, then every new record.
      const again = more.findIndex((p) => segmentOf(journal, p.header.op) === removed);
      assert.ok(again >= 0, 'the appends recreate the removed segment');
      assert.ok(samePrepare(await journal.read(8 + again), more[again] as Prepare));
      for (const [index, prepare] of more.entries()) {
        assert.ok(samePrepare(await journal.read(8 + index), prepare), `op ${8 + index}`);
      }
      await journal.close();
      const reopened = await Journal.open({ dir, cluster: testCluster, segmentSizeBytesMax });
      assertSameChain(await readAllEntries(reopened), [...prepares.slice(0, 7), ...more]);
      await reopened.truncate(0, { commitFloor: 0 });
      assert.equal(reopened.opMax, 0);
      assert.ok(checksumEqual(reopened.headChecksum, rootPrepare(testCluster).header.checksum));
      await reopened.close();
      const empty = await Journal.open({ dir, cluster: testCluster, segmentSizeBytesMax });
      assert.equal(empty.opMax, 0);
      assert.equal(empty.segmentCount, 1);
      await empty.close();
    });
  });

  it('waits for appends in flight, and refuses to cut committed records', async () => {
    // Proves the ordering and the floor: a truncation issued while appends are pending cuts
    // after they are durable; cutting below the commit floor is a programmer error.
    await withTempDir(async (dir) => {
      const prepares = makeChain(patternBodies(8, 32));
      const journal = await Journal.open({ dir, cluster: testCluster });
      const appends = prepares.map((prepare) => journal.append(prepare));
      await journal.truncate(5, { commitFloor: 5 });
      await Promise.all(appends);
      assert.equal(journal.opMax, 5);
      await assert.rejects(journal.truncate(3, { commitFloor: 4 }), AssertionError);
      await assert.rejects(journal.truncate(9, { commitFloor: 0 }), AssertionError);
      await journal.close();
    });
  });
});

/** An error as node:fs raises it: `code` set to the errno name. */
function errnoError(code: string, what: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}: ${what}`), { code });
}

/** Resolves once `condition` holds, polling; fails after `timeoutMs` (a liveness bound). */
async function eventually(condition: () => boolean, what: string, timeoutMs = 5000) {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    assert.ok(Date.now() < deadline, `timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

/** Opens a journal whose full-disk state changes are recorded in `changes`. */
async function openWatched(
  dir: string,
  io: RecordingFileIO,
  extra: { segmentSizeBytesMax?: number; freeSpace?: boolean } = {},
): Promise<{ journal: Journal; changes: boolean[] }> {
  const changes: boolean[] = [];
  const journal = await Journal.open({
    dir,
    cluster: testCluster,
    io,
    fullRetryIntervalMs: 2,
    onFull: (full) => changes.push(full),
    ...extra,
  });
  return { journal, changes };
}

describe('journal on a full disk', () => {
  it('pauses on ENOSPC: nothing resolves, then all resolve in order once space returns', async () => {
    // Proves a full disk is a pause, not a failure: with every record write refused (ENOSPC),
    // appends stay pending (none resolves or rejects) through several retries, the journal
    // says `full` once, pending records are still read from memory; once writes succeed again
    // every append resolves in op order, `full` clears once, and a reopen finds every record.
    await withTempDir(async (dir) => {
      const io = new RecordingFileIO(realFileIO);
      const { journal, changes } = await openWatched(dir, io);
      const prepares = makeChain(patternBodies(40, 300));
      await journal.append(prepares[0] as Prepare);
      let refused = 0;
      io.faults.write = () => {
        refused += 1;
        return errnoError('ENOSPC', 'no space left on device');
      };
      const order: number[] = [];
      const settled = prepares.slice(1).map((prepare) =>
        journal.append(prepare).then(
          () => order.push(prepare.header.op),
          (error: unknown) => assert.fail(`op ${prepare.header.op} rejected: ${String(error)}`),
        ),
      );
      await eventually(() => refused >= 5, 'five refused write attempts');
      assert.deepEqual(order, [], 'nothing resolves while the disk is full');
      assert.equal(journal.full, true);
      assert.equal(journal.failed, false);
      assert.equal(journal.durableOpMax, 1);
      assert.deepEqual(changes, [true]);
      assert.ok(samePrepare(await journal.read(20), prepares[19] as Prepare));
      io.faults = {};
      await Promise.all(settled);
      assert.deepEqual(
        order,
        prepares.slice(1).map((prepare) => prepare.header.op),
      );
      assert.equal(journal.full, false);
      assert.deepEqual(changes, [true, false]);
      await journal.close();
      const reopened = await Journal.open({ dir, cluster: testCluster });
      assert.equal(reopened.recovery.truncated, null);
      assertSameChain(await readAllEntries(reopened), prepares);
      await reopened.close();
    });
  });

  it('after a datasync fails with ENOSPC, rewrites the same bytes before the next datasync', async () => {
    // Proves the rule for a failed fsync: its dirty pages may have been dropped, so a second
    // datasync alone proves nothing. After the failed datasync, the batch's records are written
    // again at the same positions, and only the datasync after that rewrite resolves the appends.
    await withTempDir(async (dir) => {
      const io = new RecordingFileIO(realFileIO);
      // No free space laid down: its datasyncs would take the injected failures.
      const { journal, changes } = await openWatched(dir, io, { freeSpace: false });
      const prepares = makeChain(patternBodies(10, 500));
      await journal.append(prepares[0] as Prepare);
      let failures = 2;
      io.faults.datasync = () =>
        failures-- > 0 ? errnoError('ENOSPC', 'no space left on device') : undefined;
      io.clear();
      await Promise.all(prepares.slice(1).map((prepare) => journal.append(prepare)));
      const records = io.events.filter(
        (event) => event.kind === 'write' && event.detail !== 'zeros',
      );
      const first = records[0];
      assert.ok(first !== undefined);
      const rewrites = records.filter((event) => event.position === first.position);
      assert.equal(rewrites.length, 3, 'written once, then again after each failed datasync');
      const lastRewrite = io.events.lastIndexOf(rewrites[2] as (typeof io.events)[number]);
      const syncedAt = io.events.findIndex((event) => event.kind === 'datasync');
      assert.ok(syncedAt > lastRewrite, 'the datasync that succeeds follows the last rewrite');
      assert.deepEqual(changes, [true, false]);
      await journal.close();
      const reopened = await Journal.open({ dir, cluster: testCluster });
      assertSameChain(await readAllEntries(reopened), prepares);
      await reopened.close();
    });
  });

  it('retries a segment roll that ran out of space, leaving a partial segment file behind', async () => {
    // Proves the roll is idempotent: with 8 KiB segments, the write of a new segment's header
    // fails with ENOSPC after the file was created (as a full disk does), three times; the
    // retry removes that partial file, creates the segment again, and every record reads back
    // across the segments after a reopen.
    await withTempDir(async (dir) => {
      const io = new RecordingFileIO(realFileIO);
      const segmentSizeBytesMax = 8192;
      const { journal, changes } = await openWatched(dir, io, { segmentSizeBytesMax });
      const prepares = makeChain(patternBodies(40, 600));
      let headerFailures = 3;
      io.faults.write = (path, buffers) => {
        const header =
          !path.endsWith(`00000000${segmentFileSuffix}`) &&
          buffers.length === 1 &&
          buffers[0]?.length === segmentHeaderSizeBytes &&
          buffers[0].some((byte) => byte !== 0);
        if (!header || headerFailures === 0) return undefined;
        headerFailures -= 1;
        return errnoError('ENOSPC', 'no space left on device');
      };
      for (const prepare of prepares) await journal.append(prepare);
      assert.equal(headerFailures, 0, 'every injected failure was met');
      assert.ok(journal.segmentCount > 2);
      assert.deepEqual(changes, [true, false]);
      await journal.close();
      const reopened = await Journal.open({ dir, cluster: testCluster, segmentSizeBytesMax });
      assert.equal(reopened.recovery.truncated, null);
      assertSameChain(await readAllEntries(reopened), prepares);
      await reopened.close();
    });
  });

  it('EIO while full is still a failure, and close gives up waiting for space', async () => {
    // Proves only ENOSPC/EDQUOT pause: an EIO during the pause rejects the pending appends with
    // KMB_ERR_STORAGE_IO. And a journal closed while it waits for space does not wait forever:
    // its pending appends reject with KMB_ERR_STORAGE_FULL (they were never acknowledged).
    await withTempDir(async (dir) => {
      const io = new RecordingFileIO(realFileIO);
      const { journal } = await openWatched(dir, io);
      const prepares = makeChain(patternBodies(4, 100));
      let calls = 0;
      io.faults.write = () =>
        calls++ < 3 ? errnoError('EDQUOT', 'quota exceeded') : errnoError('EIO', 'I/O error');
      await assert.rejects(journal.append(prepares[0] as Prepare), { code: errorCodes.storage_io });
      assert.equal(journal.failed, true);
      await journal.close();
    });
    await withTempDir(async (dir) => {
      const io = new RecordingFileIO(realFileIO);
      const { journal } = await openWatched(dir, io);
      const prepares = makeChain(patternBodies(4, 100));
      io.faults.write = () => errnoError('ENOSPC', 'no space left on device');
      const pending = Promise.allSettled(prepares.map((prepare) => journal.append(prepare)));
      await eventually(() => journal.full, 'the journal to report full');
      await journal.close();
      for (const result of await pending) {
        assert.equal(result.status, 'rejected');
        assert.equal((result.reason as KmbError).code, errorCodes.storage_full);
      }
    });
  });
});
