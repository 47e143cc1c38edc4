// Proves the string rules of validate.ts: utf8SizeBytes agrees with TextEncoder on every
// well-formed string and reports -1 for lone surrogates; isIdentifier accepts exactly the
// non-empty, bounded, well-formed strings without C0, DEL or C1 control characters.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { isIdentifier, utf8SizeBytes } from './validate.js';

const encoder = new TextEncoder();

/** C0, DEL and C1 control characters, by code point. */
function hasControl(value: string): boolean {
  return [...value].some((ch) => {
    const point = ch.codePointAt(0) ?? 0;
    return point < 0x20 || (point >= 0x7f && point <= 0x9f);
  });
}

describe('validate', () => {
  it('utf8SizeBytes equals the encoded length of well-formed strings', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 64 }), (value) => {
        assert.equal(utf8SizeBytes(value, 1_000_000), encoder.encode(value).length);
      }),
      { numRuns: 1000 },
    );
  });

  it('utf8SizeBytes stops early past its limit', () => {
    assert.ok(utf8SizeBytes('x'.repeat(1000), 10) > 10);
    assert.equal(utf8SizeBytes('x'.repeat(10), 10), 10);
  });

  it('utf8SizeBytes reports lone surrogates', () => {
    for (const value of ['\uD800', 'a\uDC00', '\uD800a', 'a\uDBFF', '\uDFFF\uD800']) {
      assert.equal(utf8SizeBytes(value, 100), -1, JSON.stringify(value));
    }
    assert.equal(utf8SizeBytes('\uD83D\uDE00', 100), 4);
  });

  it('isIdentifier follows the rules', () => {
    fc.assert(
      fc.property(
        fc.string({ unit: 'binary', maxLength: 40 }),
        fc.integer({ min: 1, max: 80 }),
        (value, max) => {
          const size = encoder.encode(value).length;
          const control = hasControl(value);
          assert.equal(isIdentifier(value, max), size >= 1 && size <= max && !control);
        },
      ),
      { numRuns: 1000 },
    );
    assert.equal(isIdentifier('a\uD800', 10), false);
    assert.equal(isIdentifier('\u0085', 10), false);
    assert.equal(isIdentifier('\u00a0', 10), true);
  });
});
