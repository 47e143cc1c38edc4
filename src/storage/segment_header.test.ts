// Tests of the segment header codec and segment file names.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import fc from 'fast-check';

import {
  decodeSegmentHeader,
  encodeSegmentHeader,
  parseSegmentFileName,
  segmentFileName,
  segmentHeaderSizeBytes,
  segmentIndexMax,
} from './segment_header.js';

describe('segment header', () => {
  it('round-trips any header and rejects any flipped byte (property)', () => {
    // Proves decode(encode(h)) = h, the fixed size, and that the checksum catches a flip of
    // any single bit anywhere in the 64 bytes.
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
        fc.integer({ min: 0, max: segmentIndexMax }),
        fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
        fc.nat(segmentHeaderSizeBytes * 8 - 1),
        (cluster, segmentIndex, opFirst, bit) => {
          const header = { cluster, segmentIndex, opFirst };
          const bytes = encodeSegmentHeader(header);
          assert.equal(bytes.length, segmentHeaderSizeBytes);
          assert.deepEqual(decodeSegmentHeader(bytes), { ok: true, header });
          const flipped = bytes.slice();
          flipped[bit >> 3] = (flipped[bit >> 3] ?? 0) ^ (1 << (bit & 7));
          assert.equal(decodeSegmentHeader(flipped).ok, false);
        },
      ),
    );
  });

  it('reports short input instead of throwing', () => {
    // Proves bytes from disk never throw: a short or zero header is a reported problem.
    assert.deepEqual(decodeSegmentHeader(new Uint8Array(10)), { ok: false, problem: 'short' });
    const zero = decodeSegmentHeader(new Uint8Array(segmentHeaderSizeBytes));
    assert.deepEqual(zero, { ok: false, problem: 'header_checksum' });
  });

  it('names segment files by zero-padded index and parses only those names', () => {
    // Proves the naming scheme both ways, and that stray names are ignored.
    assert.equal(segmentFileName(0), '00000000.kjl');
    assert.equal(segmentFileName(1234), '00001234.kjl');
    assert.equal(parseSegmentFileName('00001234.kjl'), 1234);
    for (const name of ['1234.kjl', '00001234.kjl.tmp', 'x0001234.kjl', '000012345.kjl']) {
      assert.equal(parseSegmentFileName(name), null, name);
    }
  });
});
