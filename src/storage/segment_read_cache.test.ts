// Proves the journal's shared read handle (segment_read_cache.ts) with a fake FileIO that counts
// opens and closes and lets the test hold reads open: reads of one segment share one open; a
// read of another segment retires the first handle, which closes only after the reads still
// using it finish, and exactly once; invalidate() makes the next read open afresh (a truncation
// can recreate a segment file under the same name); a failed open or read is not kept.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { FileHandleLike, FileIO } from './file_io.js';
import { SegmentReadCache } from './segment_read_cache.js';

function fakeIO() {
  const log: string[] = [];
  let opens = 0;
  const failPaths = new Set<string>();
  const io = {
    open: async (path: string): Promise<FileHandleLike> => {
      opens += 1;
      const id = `${path}#${opens}`;
      log.push(`open ${id}`);
      if (failPaths.has(path)) throw new Error(`cannot open ${path}`);
      return {
        read: async () => 0,
        write: async () => 0,
        datasync: async () => undefined,
        sync: async () => undefined,
        truncate: async () => undefined,
        size: async () => 0,
        close: async () => {
          log.push(`close ${id}`);
        },
      };
    },
  } as unknown as FileIO;
  return { io, log, failPaths };
}

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('segment read cache', () => {
  it('shares one open per segment and retires it only after its reads finish', async () => {
    const { io, log } = fakeIO();
    const cache = new SegmentReadCache(io);
    await cache.withHandle('a', async () => 1);
    await cache.withHandle('a', async () => 2);
    assert.deepEqual(log, ['open a#1']);
    let release: () => void = () => undefined;
    const held = cache.withHandle('a', () => new Promise<void>((r) => (release = r)));
    await tick();
    await cache.withHandle('b', async () => 3); // Retires a#1 while a read still uses it.
    await tick();
    assert.deepEqual(log, ['open a#1', 'open b#2'], 'a#1 stays open while it is read');
    release();
    await held;
    await tick();
    assert.deepEqual(log, ['open a#1', 'open b#2', 'close a#1']);
    cache.invalidate();
    await tick();
    await cache.withHandle('b', async () => 4);
    await tick();
    assert.deepEqual(log, ['open a#1', 'open b#2', 'close a#1', 'close b#2', 'open b#3']);
  });

  it('keeps no handle whose open or read failed', async () => {
    const { io, log, failPaths } = fakeIO();
    const cache = new SegmentReadCache(io);
    failPaths.add('a');
    await assert.rejects(
      cache.withHandle('a', async () => 1),
      /cannot open a/,
    );
    failPaths.delete('a');
    assert.equal(await cache.withHandle('a', async () => 2), 2);
    await assert.rejects(
      cache.withHandle('a', async () => {
        throw new Error('short read');
      }),
      /short read/,
    );
    await tick();
    assert.equal(await cache.withHandle('a', async () => 3), 3);
    await tick();
    assert.deepEqual(log, ['open a#1', 'open a#2', 'close a#2', 'open a#3']);
  });

  it('closes a handle shared by concurrent reads exactly once', async () => {
    const { io, log } = fakeIO();
    const cache = new SegmentReadCache(io);
    const reads = Array.from({ length: 5 }, (_, i) => cache.withHandle('a', async () => i));
    cache.invalidate();
    assert.deepEqual(await Promise.all(reads), [0, 1, 2, 3, 4]);
    await tick();
    assert.deepEqual(log, ['open a#1', 'close a#1']);
  });
});
