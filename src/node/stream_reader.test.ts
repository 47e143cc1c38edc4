// Proves the batched stream read (stream_reader.ts) against the per-op read it replaced, on real
// journals in temporary directories:
// - for random layouts (events per append, registers among the appends, three interleaved
//   streams, tiny or large segments so reads cross segment boundaries, big events that make the
//   batched read skip gaps, the newest ops not yet durable, some prepares cached) and random
//   offsets and limits, it returns exactly the events readPerOp() returns, and a second read of
//   the same range (now partly from the cache) again;
// - the answer's size bound stops it where the per-op read stopped (events of 512 KiB);
// - through the query service, a whole stream of 2,000 one-event ops in one segment is read with
//   one read of the file, where the per-op read made one per op (this failed before the change:
//   2,000 reads);
// - a record that fails its checksum in the middle of a batched read rejects the read with
//   KMB_ERR_STORAGE_CORRUPT naming the op, as the per-op read did, and a range that does not
//   need that record still reads;
// - a stream spread over several segments is read with one read per segment;
// - a small read (a tail) is served from the cache the second time, while a scan keeps only the
//   last prepare of each of its steps, so it does not flush the cache;
// - prepares a read found in the cache are the ones it uses, even if appends made while it reads
//   the rest from the journal evict them (taking them from the cache after the await failed:
//   a TypeError on the evicted entry).

import assert from 'node:assert/strict';
import { open } from 'node:fs/promises';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { constants } from '../core/constants.js';
import { KmbError } from '../core/errors.js';
import { asOffset, asStreamId } from '../core/types.js';
import type { EventRecord } from '../net/client_protocol.js';
import { journalDirOf, segmentPath } from '../storage/segment_file.js';
import { segmentHeaderSizeBytes } from '../storage/segment_header.js';
import { makeChain, patternBodies, withTempDir } from '../storage/test_support.js';
import { QueryService } from './query_service.js';
import { buildFixture, fixtureTenant, readPerOp } from './stream_read_fixture.test-support.js';
import type { Layout, LayoutRequest } from './stream_read_fixture.test-support.js';
import { prepareCacheCountMax, StreamReader } from './stream_reader.js';

function sameEvents(actual: readonly EventRecord[], expected: readonly EventRecord[]): void {
  assert.equal(actual.length, expected.length, 'event count');
  actual.forEach((event, i) => {
    const want = expected[i]!;
    assert.equal(event.offset, want.offset);
    assert.equal(event.timestampUs, want.timestampUs);
    assert.deepEqual(Buffer.from(event.data), Buffer.from(want.data), `event ${event.offset}`);
  });
}

const eventSize = fc.oneof(
  { weight: 30, arbitrary: fc.integer({ min: 0, max: 300 }) },
  { weight: 1, arbitrary: fc.integer({ min: 66_000, max: 70_000 }) },
);
const request: fc.Arbitrary<LayoutRequest> = fc.oneof(
  { weight: 1, arbitrary: fc.constant({ stream: null, eventSizes: [] }) },
  {
    weight: 8,
    arbitrary: fc.record({
      stream: fc.integer({ min: 1, max: 3 }),
      eventSizes: fc.array(eventSize, { minLength: 1, maxLength: 6 }),
    }),
  },
);
const layout: fc.Arbitrary<Layout> = fc.array(fc.array(request, { minLength: 1, maxLength: 6 }), {
  minLength: 1,
  maxLength: 40,
});
const query = fc.record({
  stream: fc.integer({ min: 1, max: 3 }),
  from: fc.nat(),
  limit: fc.integer({ min: 1, max: 200 }),
});

describe('batched stream reads', () => {
  it('return exactly what the per-op read returned (random layouts and ranges)', async () => {
    await fc.assert(
      fc.asyncProperty(
        layout,
        fc.constantFrom(700, 4096, 64 * 1024 * 1024),
        fc.nat({ max: 3 }),
        fc.nat({ max: 8 }),
        fc.array(query, { minLength: 1, maxLength: 4 }),
        async (ops, segmentSizeBytesMax, unsyncedCount, cachedCount, queries) => {
          await withTempDir(async (dir) => {
            const options = { streamCount: 3, segmentSizeBytesMax, unsyncedCount };
            const fixture = await buildFixture(dir, ops, options);
            const reader = new StreamReader(fixture.index, fixture.journal);
            for (const prepare of fixture.prepares.slice(-cachedCount)) reader.remember(prepare);
            try {
              for (const q of queries) {
                const streamId = asStreamId(q.stream);
                const next = fixture.index.nextOffset(streamId);
                const from = next === 0 ? 0 : q.from % (next + 1);
                const end = Math.min(next, from + q.limit);
                const batched = await reader.read(streamId, from, end);
                const perOp = await readPerOp(fixture.index, fixture.journal, streamId, from, end);
                sameEvents(batched, perOp);
                sameEvents(await reader.read(streamId, from, end), perOp);
              }
            } finally {
              await fixture.pending;
              await fixture.journal.close();
            }
          });
        },
      ),
      { numRuns: 100 },
    );
  });

  it('stop at the size bound where the per-op read stopped', async () => {
    await withTempDir(async (dir) => {
      const big = constants.eventSizeBytesMax;
      const ops: Layout = Array.from({ length: 12 }, () => [{ stream: 1, eventSizes: [big] }]);
      const fixture = await buildFixture(dir, ops, { streamCount: 1 });
      try {
        const reader = new StreamReader(fixture.index, fixture.journal);
        for (const from of [0, 3]) {
          const batched = await reader.read(asStreamId(1), from, 12);
          const perOp = await readPerOp(fixture.index, fixture.journal, asStreamId(1), from, 12);
          assert.equal(batched.length, Math.floor(constants.readSizeBytesMax / big));
          sameEvents(batched, perOp);
        }
      } finally {
        await fixture.journal.close();
      }
    });
  });

  it('read a whole stream of one-event ops in one segment with one file read', async () => {
    await withTempDir(async (dir) => {
      const ops: Layout = Array.from({ length: 2_000 }, () => [{ stream: 1, eventSizes: [100] }]);
      const fixture = await buildFixture(dir, ops, { streamCount: 1 });
      try {
        const service = new QueryService(fixture.state, fixture.index, fixture.journal);
        fixture.io.clear();
        const result = await service.run({
          kind: 'read_stream',
          tenantId: fixtureTenant,
          streamId: asStreamId(1),
          fromOffset: asOffset(0),
          limit: constants.readEventCountMax,
        });
        assert.equal(result.kind, 'read_stream');
        if (result.kind === 'read_stream') assert.equal(result.events.length, 2_000);
        assert.equal(fixture.io.count('read'), 1, 'reads of the segment file');
      } finally {
        await fixture.journal.close();
      }
    });
  });

  it('read a stream spread over several segments with one read per segment', async () => {
    await withTempDir(async (dir) => {
      const ops: Layout = Array.from({ length: 300 }, () => [{ stream: 1, eventSizes: [100] }]);
      const fixture = await buildFixture(dir, ops, { streamCount: 1, segmentSizeBytesMax: 16_384 });
      try {
        assert.ok(fixture.journal.segmentCount >= 4, 'the stream spans segments');
        const reader = new StreamReader(fixture.index, fixture.journal);
        fixture.io.clear();
        const batched = await reader.read(asStreamId(1), 0, 300);
        sameEvents(batched, await readPerOp(fixture.index, fixture.journal, asStreamId(1), 0, 300));
        // Op 1 (the stream's creation) is in segment 0 with the first appends: every segment is
        // read once.
        fixture.io.clear();
        await new StreamReader(fixture.index, fixture.journal).read(asStreamId(1), 0, 300);
        assert.equal(fixture.io.count('read'), fixture.journal.segmentCount);
      } finally {
        await fixture.journal.close();
      }
    });
  });

  it('cache what a small read took from disk, and of a scan only where pages start', async () => {
    await withTempDir(async (dir) => {
      const ops: Layout = Array.from({ length: 3_000 }, () => [{ stream: 1, eventSizes: [1000] }]);
      const fixture = await buildFixture(dir, ops, { streamCount: 1 });
      try {
        const reader = new StreamReader(fixture.index, fixture.journal);
        const reads = async (from: number, end: number): Promise<number> => {
          fixture.io.clear();
          await reader.read(asStreamId(1), from, end);
          return fixture.io.count('read');
        };
        assert.equal(await reads(2_900, 3_000), 1, 'the tail, from disk');
        assert.equal(await reads(2_900, 3_000), 0, 'the tail again, from the cache');
        assert.equal(await reads(2_950, 3_000), 0, 'part of it, from the cache');
        // A scan of 2,000 one-event ops takes several steps; it keeps each step's last prepare,
        // not all of them, so the tail stays cached and the scan's first ops do not.
        assert.ok((await reads(0, 2_000)) > 1, 'the scan reads in steps');
        assert.equal(await reads(2_900, 3_000), 0, 'the tail is still cached');
        assert.equal(await reads(0, 10), 1, 'the start of the scan was not kept');
      } finally {
        await fixture.journal.close();
      }
    });
  });

  it('keep the cached prepares a read took even if appends evict them meanwhile', async () => {
    await withTempDir(async (dir) => {
      const ops: Layout = Array.from({ length: 40 }, () => [{ stream: 1, eventSizes: [50] }]);
      const fixture = await buildFixture(dir, ops, { streamCount: 1 });
      try {
        const reader = new StreamReader(fixture.index, fixture.journal);
        // Ops 2..20 cached, 21..41 on disk only: the read reads those while the cache turns over.
        for (const prepare of fixture.prepares.slice(1, 20)) reader.remember(prepare);
        const reading = reader.read(asStreamId(1), 0, 40);
        const later = makeChain(patternBodies(prepareCacheCountMax, 10), {
          previous: fixture.prepares.at(-1)!,
        });
        for (const prepare of later) reader.remember(prepare);
        const expected = await readPerOp(fixture.index, fixture.journal, asStreamId(1), 0, 40);
        sameEvents(await reading, expected);
      } finally {
        await fixture.journal.close();
      }
    });
  });

  it('report a record that fails its checksum inside a batched read', async () => {
    await withTempDir(async (dir) => {
      const ops: Layout = Array.from({ length: 50 }, () => [{ stream: 1, eventSizes: [100] }]);
      const fixture = await buildFixture(dir, ops, { streamCount: 1 });
      const corruptOp = 26; // Holds offset 24 (op 1 created the stream).
      try {
        assert.equal(fixture.prepares[corruptOp - 1]!.header.op, corruptOp);
        // Under the open journal, as a disk fault would: open verified everything already.
        await flipLastByteOf(dir, fixture.prepares.slice(0, corruptOp));
        const read = (from: number, end: number): Promise<EventRecord[]> =>
          new StreamReader(fixture.index, fixture.journal).read(asStreamId(1), from, end);
        await assert.rejects(read(0, 50), (error: unknown) => {
          assert.ok(error instanceof KmbError);
          assert.equal(error.code, 'KMB_ERR_STORAGE_CORRUPT');
          assert.match(error.message, new RegExp(`op ${corruptOp}\\b`));
          return true;
        });
        await assert.rejects(
          readPerOp(fixture.index, fixture.journal, asStreamId(1), 0, 50),
          (error: unknown) => error instanceof KmbError && error.code === 'KMB_ERR_STORAGE_CORRUPT',
        );
        assert.equal((await read(0, 24)).length, 24);
        assert.equal((await read(25, 50)).length, 25);
      } finally {
        await fixture.journal.close();
      }
    });
  });
});

/** Flips the last body byte of the last of `prepares` in the journal's first segment file. */
async function flipLastByteOf(
  dir: string,
  prepares: readonly { headerBytes: Uint8Array; body: Uint8Array }[],
): Promise<void> {
  let end = segmentHeaderSizeBytes;
  for (const p of prepares) end += p.headerBytes.length + p.body.length;
  const file = await open(segmentPath(journalDirOf(dir), 0), 'r+');
  try {
    const byte = Buffer.alloc(1);
    await file.read(byte, 0, 1, end - 1);
    byte[0] = byte[0]! ^ 0xff;
    await file.write(byte, 0, 1, end - 1);
  } finally {
    await file.close();
  }
}
