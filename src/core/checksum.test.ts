// The SHA-256 helpers against node:crypto's own hex digest: every byte of the digest survives the
// trip through a 'binary' string (bytes 0x80..0xff included), the parts forms equal the one-shot
// form, an output offset writes exactly 32 bytes there and nothing around them, and the arrays
// returned are plain Uint8Arrays.

import { createHash } from 'node:crypto';
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { sha256, sha256Into, sha256Parts, sha256PartsInto, toHex } from './checksum.js';

function reference(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

describe('sha256', () => {
  it('matches node:crypto, whole and in parts, into any offset', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 600 }),
        fc.nat(),
        fc.nat({ max: 40 }),
        (data, cutSeed, offset) => {
          const expected = reference(data);
          assert.equal(toHex(sha256(data)), expected);
          const cut = cutSeed % (data.length + 1);
          assert.equal(toHex(sha256Parts([data.subarray(0, cut), data.subarray(cut)])), expected);
          for (const write of [
            (out: Uint8Array) => sha256Into(data, out, offset),
            (out: Uint8Array) =>
              sha256PartsInto([data.subarray(0, cut), data.subarray(cut)], out, offset),
          ]) {
            const out = new Uint8Array(offset + 32 + 5).fill(0xee);
            write(out);
            assert.equal(toHex(out.subarray(offset, offset + 32)), expected);
            assert.ok(out.subarray(0, offset).every((byte) => byte === 0xee));
            assert.ok(out.subarray(offset + 32).every((byte) => byte === 0xee));
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it('returns a plain 32-byte Uint8Array, and refuses an output too small', () => {
    const digest = sha256(new Uint8Array([1, 2, 3]));
    assert.equal(Object.getPrototypeOf(digest), Uint8Array.prototype);
    assert.equal(digest.length, 32);
    assert.throws(() => sha256Into(new Uint8Array(1), new Uint8Array(40), 9));
  });
});
