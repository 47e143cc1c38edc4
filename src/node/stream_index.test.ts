// The read index against a model: for random appends to several streams (random event counts,
// ops and request indexes), every offset of every stream locates to the append that holds it,
// with the event's position inside that append, and offsets past the end locate to nothing. A
// second test fills one stream across several full chunks, so the growth of the first chunk and
// the search across chunks are both exercised at their boundaries.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { asOffset, asOp, asStreamId } from '../core/types.js';
import { chunkEntryCountMax, StreamIndex } from './stream_index.js';

interface ModelAppend {
  readonly stream: number;
  readonly firstOffset: number;
  readonly count: number;
  readonly op: number;
  readonly requestIndex: number;
}

test('every offset locates to the append that holds it (model)', () => {
  const append = fc.record({
    stream: fc.integer({ min: 1, max: 3 }),
    count: fc.integer({ min: 1, max: 5 }),
    requestIndex: fc.integer({ min: 0, max: 1023 }),
  });
  fc.assert(
    fc.property(fc.array(append, { maxLength: 300 }), (appends) => {
      const index = new StreamIndex();
      const next = new Map<number, number>();
      const model: ModelAppend[] = [];
      appends.forEach((a, i) => {
        const firstOffset = next.get(a.stream) ?? 0;
        const op = 1000 + i;
        index.recordAppend(
          asStreamId(a.stream),
          asOffset(firstOffset),
          a.count,
          asOp(op),
          a.requestIndex,
        );
        model.push({ ...a, firstOffset, op });
        next.set(a.stream, firstOffset + a.count);
      });
      for (const entry of model) {
        for (let k = 0; k < entry.count; k++) {
          const found = index.locate(asStreamId(entry.stream), entry.firstOffset + k);
          assert.deepEqual(found, {
            op: entry.op,
            requestIndex: entry.requestIndex,
            eventIndex: k,
          });
        }
      }
      for (const stream of [1, 2, 3]) {
        const end = next.get(stream) ?? 0;
        assert.equal(index.nextOffset(asStreamId(stream)), end);
        assert.equal(index.locate(asStreamId(stream), end), undefined);
      }
    }),
    { numRuns: 200 },
  );
});

test('a stream that spans several full chunks locates at every chunk boundary', () => {
  const index = new StreamIndex();
  const stream = asStreamId(7);
  const appendCount = chunkEntryCountMax * 2 + 100;
  // Append i holds (i % 3) + 1 events, so entry i starts at firstOffsetOf(i).
  const firstOffsetOf = (i: number): number => {
    const whole = Math.floor(i / 3);
    return whole * 6 + [0, 1, 3][i % 3]!;
  };
  for (let i = 0; i < appendCount; i++) {
    index.recordAppend(stream, asOffset(firstOffsetOf(i)), (i % 3) + 1, asOp(i + 1), i % 1024);
  }
  const probes = [0, 7, 8, 9, chunkEntryCountMax - 1, chunkEntryCountMax, chunkEntryCountMax + 1];
  probes.push(2 * chunkEntryCountMax - 1, 2 * chunkEntryCountMax, appendCount - 1);
  for (const i of probes) {
    const count = (i % 3) + 1;
    for (let k = 0; k < count; k++) {
      const found = index.locate(stream, firstOffsetOf(i) + k);
      assert.deepEqual(found, { op: i + 1, requestIndex: i % 1024, eventIndex: k }, `entry ${i}`);
    }
  }
  const end = firstOffsetOf(appendCount - 1) + ((appendCount - 1) % 3) + 1;
  assert.equal(index.nextOffset(stream), end);
  assert.equal(index.locate(stream, end), undefined);
  assert.equal(index.locate(stream, -1), undefined);
  assert.equal(index.locate(asStreamId(8), 0), undefined);
});
