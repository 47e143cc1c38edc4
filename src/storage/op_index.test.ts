// Tests of the op index against a plain array model.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import fc from 'fast-check';

import { AssertionError } from '../core/assert.js';
import { OpIndex } from './op_index.js';

describe('op index', () => {
  it('locates every op like a simple model, across growth and segments (property)', () => {
    // Proves locate() agrees with a list of (segment, position, size) for random layouts,
    // including empty trailing segments and more ops than the initial capacity.
    fc.assert(
      fc.property(
        fc.array(fc.record({ newSegment: fc.boolean(), size: fc.integer({ min: 1, max: 5000 }) }), {
          minLength: 1,
          maxLength: 3000,
        }),
        fc.boolean(),
        (steps, trailingEmpty) => {
          const index = new OpIndex();
          const model: { segment: number; position: number; sizeBytes: number }[] = [];
          let segment = -1;
          let position = 0;
          steps.forEach((step, i) => {
            if (i === 0 || step.newSegment) {
              index.addSegment(i + 1);
              segment += 1;
              position = 64;
            }
            index.push(position, step.size);
            model.push({ segment, position, sizeBytes: step.size });
            position += step.size;
          });
          if (trailingEmpty) index.addSegment(steps.length + 1);
          assert.equal(index.opMax, steps.length);
          model.forEach((expected, i) => assert.deepEqual(index.locate(i + 1), expected));
          for (let s = 0; s <= segment; s++) {
            const ops = model.flatMap((m, i) => (m.segment === s ? [i + 1] : []));
            assert.equal(index.segmentOpFirst(s), ops[0]);
            assert.equal(index.segmentOpLast(s), ops.at(-1));
          }
        },
      ),
      { numRuns: 50 },
    );
  });

  it('asserts on ops outside the index and on dropping a non-empty segment', () => {
    // Proves misuse is a programmer error, caught by assertions.
    const index = new OpIndex();
    index.addSegment(1);
    index.push(64, 10);
    assert.throws(() => index.locate(0), AssertionError);
    assert.throws(() => index.locate(2), AssertionError);
    assert.throws(() => index.dropEmptyLastSegment(), AssertionError);
    index.addSegment(2);
    index.dropEmptyLastSegment();
    assert.equal(index.segmentCount, 1);
  });
});
