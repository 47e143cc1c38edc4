// Writer.hexFixed against Buffer's own hex decoding: any bytes, spelled in lower or upper case,
// come back as the same bytes at the writer's position; a wrong length or a non-hex digit is a
// programmer error (client ids are checked hex strings by their type). Reader's integers against
// DataView's little-endian reads at any offset of any bytes (views into a larger buffer
// included), with DecodeError exactly when the bytes run out. Writer.string against TextEncoder
// for ASCII, Latin-1, BMP and lone-surrogate strings.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { DecodeError, Reader, Writer } from './binary.js';

describe('Writer.hexFixed', () => {
  it('writes the bytes a hex string spells, in either case, after what came before', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 40 }),
        fc.uint8Array({ maxLength: 9 }),
        fc.boolean(),
        (bytes, before, upper) => {
          const hex = Buffer.from(bytes).toString('hex');
          const writer = new Writer(1).fixed(before, before.length);
          writer.hexFixed(upper ? hex.toUpperCase() : hex, bytes.length).u8(0x7e);
          assert.deepEqual(
            Buffer.from(writer.finish()),
            Buffer.concat([before, Buffer.from(hex, 'hex'), Buffer.of(0x7e)]),
          );
        },
      ),
      { numRuns: 300 },
    );
  });

  it('refuses a hex string of the wrong length or with a non-hex digit', () => {
    assert.throws(() => new Writer().hexFixed('abc', 2));
    assert.throws(() => new Writer().hexFixed('0g', 1));
    assert.throws(() => new Writer().hexFixed('/0', 1));
    assert.throws(() => new Writer().hexFixed(':0', 1));
  });
});

describe('Reader integers', () => {
  type Read = 'u8' | 'u16' | 'u32' | 'u64';
  const sizeOf: Record<Read, number> = { u8: 1, u16: 2, u32: 4, u64: 8 };

  /** What DataView reads at `at`, or 'short' / 'unsafe' where Reader must throw. */
  function expected(view: DataView, at: number, read: Read): number | string {
    if (at + sizeOf[read] > view.byteLength) return 'short';
    if (read === 'u8') return view.getUint8(at);
    if (read === 'u16') return view.getUint16(at, true);
    if (read === 'u32') return view.getUint32(at, true);
    const value = view.getUint32(at + 4, true) * 0x1_0000_0000 + view.getUint32(at, true);
    return Number.isSafeInteger(value) ? value : 'unsafe';
  }

  it('reads what DataView reads, little-endian, and throws DecodeError past the end', () => {
    const readArb = fc.constantFrom<Read>('u8', 'u16', 'u32', 'u64');
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 40 }),
        fc.nat({ max: 8 }),
        fc.array(readArb, { maxLength: 12 }),
        (whole, cut, reads) => {
          const bytes = whole.subarray(Math.min(cut, whole.length));
          const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
          const reader = new Reader(bytes);
          let at = 0;
          for (const read of reads) {
            const want = expected(view, at, read);
            if (typeof want === 'number') {
              assert.equal(reader[read](), want);
              at += sizeOf[read];
              continue;
            }
            assert.throws(() => reader[read](), DecodeError);
            return;
          }
          assert.equal(reader.offset, at);
        },
      ),
      { numRuns: 2_000 },
    );
  });

  it('reads back what Writer wrote', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 0xff }),
        fc.integer({ min: 0, max: 0xffff }),
        fc.integer({ min: 0, max: 0xffff_ffff }),
        fc.maxSafeNat(),
        (a, b, c, d) => {
          const bytes = new Writer().u8(a).u16(b).u32(c).u64(d).finish();
          const reader = new Reader(bytes);
          assert.deepEqual([reader.u8(), reader.u16(), reader.u32(), reader.u64()], [a, b, c, d]);
          reader.end();
        },
      ),
      { numRuns: 1_000 },
    );
  });
});

describe('Writer.string', () => {
  it('writes what TextEncoder encodes, length-prefixed, for any string, and Reader reads it back', () => {
    // ASCII goes through a direct path and everything else through TextEncoder; both must give
    // the same bytes (lone surrogates included, which UTF-8 encodes as U+FFFD).
    const text = fc.oneof(
      fc.string({ unit: 'grapheme-ascii', maxLength: 300 }),
      fc.string({ unit: 'binary', maxLength: 40 }),
      fc.string({ unit: fc.integer({ min: 0, max: 0xff }).map((c) => String.fromCharCode(c)) }),
      fc.string({ unit: fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)) }),
    );
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 9 }), text, (before, value) => {
        const written = new Writer(1).fixed(before, before.length).string(value).finish();
        const encoded = new TextEncoder().encode(value);
        const expected = new Writer(1).fixed(before, before.length).bytesField(encoded).finish();
        assert.deepEqual(written, expected);
        if (!/[\ud800-\udfff]/.test(value)) {
          const reader = new Reader(written);
          reader.fixed(before.length);
          assert.equal(reader.string(1_000_000), value);
        }
      }),
      { numRuns: 500 },
    );
  });
});
