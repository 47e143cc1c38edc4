// Proves that two servers can never share a data directory. While one serves, a second server
// pointed at the same directory exits 1 naming the lock and the owner's pid, and the first keeps
// serving. Deleting the LOCK file does not change that: the lock is held by the operating system
// (an abstract Unix socket named after the directory), so a second server started after
// `rm DIR/LOCK` is refused too, and the first server's data stays a single clean hash chain.
// After the first is killed with SIGKILL (its lock file left behind), a restart takes the lock
// (the kernel freed it with the process) and serves the same data.

import { strict as assert } from 'node:assert';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { Harness } from './harness.js';

test('a data directory is locked by the server that uses it', async (t) => {
  const h = new Harness(t);
  const dataDir = await h.tempDir('kmb-lock-');
  const first = await h.startServer({ dataDir });
  const client = await h.connect({ addresses: [first.address] });
  await client.createTenant('locked');
  const second = await h.runServerToExit({ dataDir });
  const detail = `stdout: ${second.stdout}\nstderr: ${second.stderr}`;
  assert.equal(second.code, 1, detail);
  assert.match(second.stderr, /in use by process \d+ \(lock file .*LOCK\)/, detail);
  assert.equal((await client.listTenants()).length, 1, 'the first server still serves');
  await client.close();
  await first.kill('SIGKILL');
  const restarted = await h.restart(first);
  const again = await h.connect({ addresses: [restarted.address] });
  assert.deepEqual(
    (await again.listTenants()).map((tenant) => tenant.name),
    ['locked'],
  );
});

test('deleting the LOCK file does not let a second server in; kill -9 frees the lock', async (t) => {
  const h = new Harness(t);
  const dataDir = await h.tempDir('kmb-lock-rm-');
  const first = await h.startServer({ dataDir });
  const client = await h.connect({ addresses: [first.address] });
  await client.createTenant('before');
  await rm(join(dataDir, 'LOCK'));
  const second = await h.runServerToExit({ dataDir });
  const detail = `stdout: ${second.stdout}\nstderr: ${second.stderr}`;
  assert.equal(second.code, 1, `a second server must be refused after rm LOCK\n${detail}`);
  assert.match(second.stderr, /data directory .* is in use/, detail);
  await client.createTenant('after');
  await client.close();
  await first.kill('SIGKILL');
  const restarted = await h.restart(first);
  const again = await h.connect({ addresses: [restarted.address] });
  assert.deepEqual(
    (await again.listTenants()).map((tenant) => tenant.name),
    ['before', 'after'],
  );
  await again.close();
  await restarted.stop();
  const verify = await h.runAdmin(['verify', '--data-dir', dataDir]);
  assert.equal(verify.code, 0, `verify: ${verify.stdout}\n${verify.stderr}`);
});
