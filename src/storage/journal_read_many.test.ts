// Proves the journal's batched reads (journal_read.ts planBatchRuns, Journal.readMany):
// - the plan, over random record sizes (some larger than a whole run) in random segments and a
//   random ascending choice of ops: runs cover the chosen ops in order, each lies in one segment
//   from its first record's start to its last record's end, spans at most
//   journalBatchReadSizeBytesMax unless it is a single record, skips at most
//   journalBatchReadGapBytesMax between two records, and is as long as those rules allow (each
//   run ends for a reason: the next op is in another segment, too far, or would make it too long);
// - readMany on a real journal of tiny segments, for random choices of ops with the newest not
//   yet durable, visits each chosen op once, in order, with the very prepare read() returns;
// - a record that is not asked for and fails its checksum, inside a run's gap, changes nothing;
//   the same record asked for is reported as KMB_ERR_STORAGE_CORRUPT naming its op.

import assert from 'node:assert/strict';
import { open } from 'node:fs/promises';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { Prepare } from '../core/header.js';
import { KmbError } from '../core/errors.js';
import { Journal } from './journal.js';
import {
  journalBatchReadGapBytesMax,
  journalBatchReadSizeBytesMax,
  planBatchRuns,
} from './journal_read.js';
import { OpIndex } from './op_index.js';
import { journalDirOf, segmentPath } from './segment_file.js';
import { segmentHeaderSizeBytes } from './segment_header.js';
import { makeChain, patternBodies, samePrepare, testCluster, withTempDir } from './test_support.js';

const recordSize = fc.oneof(
  { weight: 20, arbitrary: fc.integer({ min: 200, max: 40_000 }) },
  { weight: 3, arbitrary: fc.integer({ min: 60_000, max: 200_000 }) },
  { weight: 1, arbitrary: fc.integer({ min: 1_100_000, max: 1_500_000 }) },
);

describe('batched journal reads', () => {
  it('plan runs that follow the rules and are as long as they allow', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ size: recordSize, newSegment: fc.boolean() }), {
          minLength: 1,
          maxLength: 120,
        }),
        fc.array(fc.boolean(), { minLength: 120, maxLength: 120 }),
        (records, chosen) => {
          const index = new OpIndex();
          let position = 0;
          records.forEach((record, i) => {
            if (i === 0 || (record.newSegment && i % 4 === 0)) {
              index.addSegment(i + 1);
              position = segmentHeaderSizeBytes;
            }
            index.push(position, record.size);
            position += record.size;
          });
          const ops = records.map((_, i) => i + 1).filter((_, i) => chosen[i]);
          checkPlan(index, ops);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('visit each asked op once, in order, as read() returns it', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.integer({ min: 1, max: 600 }), { minLength: 1, maxLength: 60 }),
        fc.array(fc.boolean(), { minLength: 60, maxLength: 60 }),
        fc.nat({ max: 4 }),
        async (sizes, chosen, unsyncedCount) => {
          await withTempDir(async (dir) => {
            const journal = await Journal.open({
              dir,
              cluster: testCluster,
              segmentSizeBytesMax: 2048,
              freeSpace: false,
            });
            const bodies = sizes.map((size, i) => patternBodies(i + 1, size)[i]!);
            const prepares = makeChain(bodies);
            const pending: Promise<void>[] = [];
            for (const [i, prepare] of prepares.entries()) {
              if (i < prepares.length - unsyncedCount) await journal.append(prepare);
              else pending.push(journal.append(prepare));
            }
            try {
              const ops = prepares.map((_, i) => i + 1).filter((_, i) => chosen[i]);
              const visited: Array<[number, Prepare]> = [];
              await journal.readMany(ops, (prepare, k) => visited.push([k, prepare]));
              assert.deepEqual(
                visited.map(([k]) => k),
                ops.map((_, k) => k),
              );
              for (const [k, prepare] of visited) {
                assert.ok(samePrepare(prepare, await journal.read(ops[k]!)), `op ${ops[k]}`);
              }
            } finally {
              await Promise.all(pending);
              await journal.close();
            }
          });
        },
      ),
      { numRuns: 60 },
    );
  });

  it('verify the records asked for, not the ones read through in a gap', async () => {
    await withTempDir(async (dir) => {
      const journal = await Journal.open({ dir, cluster: testCluster, freeSpace: false });
      const prepares = makeChain(patternBodies(5, 300));
      for (const prepare of prepares) await journal.append(prepare);
      try {
        // Flip the last body byte of op 3, under the open journal (open verified it already).
        let end = segmentHeaderSizeBytes;
        for (const p of prepares.slice(0, 3)) end += p.headerBytes.length + p.body.length;
        const file = await open(segmentPath(journalDirOf(dir), 0), 'r+');
        await file.write(Buffer.from([prepares[2]!.body.at(-1)! ^ 0xff]), 0, 1, end - 1);
        await file.close();
        const seen: number[] = [];
        await journal.readMany([1, 2, 4, 5], (prepare) => seen.push(prepare.header.op));
        assert.deepEqual(seen, [1, 2, 4, 5]);
        await assert.rejects(
          journal.readMany([2, 3, 4], () => undefined),
          (error: unknown) => {
            assert.ok(error instanceof KmbError);
            assert.equal(error.code, 'KMB_ERR_STORAGE_CORRUPT');
            assert.match(error.message, /op 3\b/);
            return true;
          },
        );
      } finally {
        await journal.close();
      }
    });
  });
});

function checkPlan(index: OpIndex, ops: readonly number[]): void {
  const runs = planBatchRuns(index, ops, ops.length);
  let next = 0;
  const end = (op: number): number => index.position(op) + index.sizeBytes(op);
  for (const [r, run] of runs.entries()) {
    assert.equal(run.first, next, 'runs cover the list in order');
    assert.ok(run.last > run.first, 'a run holds an op');
    next = run.last;
    const first = ops[run.first]!;
    const last = ops[run.last - 1]!;
    assert.equal(index.segment(first), run.segment);
    assert.equal(index.segment(last), run.segment, 'a run lies in one segment');
    assert.equal(run.start, index.position(first));
    assert.equal(run.end, end(last));
    if (run.last - run.first > 1) assert.ok(run.end - run.start <= journalBatchReadSizeBytesMax);
    for (let i = run.first + 1; i < run.last; i++) {
      assert.ok(index.position(ops[i]!) - end(ops[i - 1]!) <= journalBatchReadGapBytesMax);
    }
    const following = runs[r + 1];
    if (following === undefined) continue;
    const op = ops[following.first]!;
    const ended =
      index.segment(op) !== run.segment ||
      index.position(op) - end(last) > journalBatchReadGapBytesMax ||
      end(op) - run.start > journalBatchReadSizeBytesMax;
    assert.ok(ended, `run ${r} could have taken op ${op}`);
  }
  assert.equal(next, ops.length, 'every op is planned');
}
