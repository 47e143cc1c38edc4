// Writer.hexFixed against Buffer's own hex decoding: any bytes, spelled in lower or upper case,
// come back as the same bytes at the writer's position; a wrong length or a non-hex digit is a
// programmer error (client ids are checked hex strings by their type).

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { Writer } from './binary.js';

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
