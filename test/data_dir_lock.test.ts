// Proves that two servers can never share a data directory: while one serves, a second server
// pointed at the same directory exits 1 naming the lock and the owner's pid, and the first keeps
// serving. After the first is killed with SIGKILL (its lock file left behind), a restart takes
// the stale lock over and serves the same data.

import { strict as assert } from 'node:assert';
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
