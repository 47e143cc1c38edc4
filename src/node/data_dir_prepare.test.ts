// Proves prepareDataDir(): a missing data directory is created with its parents, an existing
// one is accepted, and a path that cannot be a directory (a file there, or a file where a parent
// should be) is KMB_ERR_STORAGE_IO naming the path and saying, in words, what is in the way.
// The server's start-up with such a path is tested in test/bad_input_limits.test.ts.

import assert from 'node:assert/strict';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { KmbError, errorCodes } from '../core/errors.js';
import { describeFsError, prepareDataDir } from './data_dir_prepare.js';

test('a data directory is created, or refused in words when it cannot be one', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'kmb-prepare-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const nested = join(dir, 'a', 'b', 'data');
  await prepareDataDir(nested);
  assert.ok((await stat(nested)).isDirectory());
  await prepareDataDir(nested);

  const file = join(dir, 'file');
  await writeFile(file, 'x');
  const cases: Array<[string, string]> = [
    [file, 'it is a file, not a directory'],
    [join(file, 'below'), `${file} is a file, not a directory`],
  ];
  for (const [path, why] of cases) {
    await assert.rejects(prepareDataDir(path), (error: unknown) => {
      assert.ok(error instanceof KmbError);
      assert.equal(error.code, errorCodes.storage_io);
      assert.ok(
        error.message.startsWith(`data directory ${path} cannot be used: ${why}`),
        error.message,
      );
      return true;
    });
  }
  const errno = Object.assign(new Error('raw'), { code: 'EACCES' });
  assert.equal(describeFsError(errno), 'permission denied (EACCES)');
});
