// Tests of the FileIO helpers and the real implementation.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';

import fc from 'fast-check';

import { readAll, realFileIO, writeAll } from './file_io.js';
import type { FileHandleLike } from './file_io.js';
import { withTempDir } from './test_support.js';

/** An in-memory handle that transfers at most `stepBytes` per call, like a short writev. */
function stingyHandle(stepBytes: number): FileHandleLike & { data: number[] } {
  const data: number[] = [];
  return {
    data,
    async write(buffers, position) {
      let written = 0;
      for (const buffer of buffers) {
        for (const byte of buffer) {
          if (written === stepBytes) return written;
          data[position + written] = byte;
          written += 1;
        }
      }
      return written;
    },
    async read(buffer, position) {
      const count = Math.max(0, Math.min(stepBytes, buffer.length, data.length - position));
      for (let i = 0; i < count; i++) buffer[i] = data[position + i] ?? 0;
      return count;
    },
    datasync: async () => undefined,
    sync: async () => undefined,
    truncate: async (sizeBytes) => void (data.length = sizeBytes),
    size: async () => data.length,
    close: async () => undefined,
  };
}

describe('file io', () => {
  it('writeAll and readAll loop over short transfers (property)', async () => {
    // Proves that however short each write/read is, every byte lands in order and reads back;
    // readAll stops at end of file.
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.uint8Array({ maxLength: 40 }), { maxLength: 8 }),
        fc.integer({ min: 1, max: 17 }),
        fc.nat(30),
        async (buffers, stepBytes, position) => {
          const handle = stingyHandle(stepBytes);
          const expected = Buffer.concat(buffers);
          const written = await writeAll(handle, buffers, position);
          assert.equal(written, expected.length);
          const back = new Uint8Array(expected.length + 5);
          const read = await readAll(handle, back, position);
          assert.equal(read, expected.length);
          assert.deepEqual(Buffer.from(back.subarray(0, read)), expected);
        },
      ),
    );
  });

  it('realFileIO: exclusive create, positional writev, stat, directory fsync', async () => {
    // Proves the real implementation's contract: 'create' refuses an existing file, writes are
    // positional, stat is null for a missing path, and fsyncDir works on a directory.
    await withTempDir(async (dir) => {
      const path = join(dir, 'f');
      assert.equal(await realFileIO.stat(path), null);
      const handle = await realFileIO.open(path, 'create');
      await writeAll(handle, [new Uint8Array([1, 2]), new Uint8Array([3])], 4);
      await handle.datasync();
      assert.equal(await handle.size(), 7);
      await handle.close();
      await assert.rejects(realFileIO.open(path, 'create'), { code: 'EEXIST' });
      const reader = await realFileIO.open(path, 'read');
      const bytes = new Uint8Array(7);
      assert.equal(await readAll(reader, bytes, 0), 7);
      assert.deepEqual([...bytes], [0, 0, 0, 0, 1, 2, 3]);
      await reader.close();
      assert.deepEqual(await realFileIO.stat(path), {
        sizeBytes: 7,
        isFile: true,
        isDirectory: false,
      });
      await realFileIO.fsyncDir(dir);
      assert.deepEqual(await realFileIO.readdir(dir), ['f']);
    });
  });
});
