// The runbook's `kimberlite-cli debug profile` against a real server (bin/, so `npm run build`
// first).

import { strict as assert } from 'node:assert';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { Profile } from 'pprof-format';
import { Harness } from './harness.js';

test('debug profile writes a replica CPU or heap profile that pprof decodes', async (t) => {
  // Proves: the CLI finds the replica's ops endpoint from the replica's own status
  // (metrics_address, the bound port), takes a 1 s CPU profile while a client writes, and writes
  // a gzip'd pprof file with samples (exit 0, --json names the file and its size); --heap writes
  // a heap profile; a duration outside 1 s..5 m is a usage error (exit 2) and a replica id with
  // no address is exit 1 with a reason.
  const h = new Harness(t);
  const server = await h.startServer({ dataDir: await h.tempDir() });
  const outDir = await h.tempDir('kmb-profile-');
  const db = await h.connect({ addresses: [server.address] });
  const tenant = await db.createTenant('t');
  const stream = await db.createStream({ tenantId: tenant.tenantId, name: 's' });
  let writing = true;
  const writer = (async () => {
    while (writing)
      await db.append({ tenantId: tenant.tenantId, streamId: stream.streamId, events: ['e'] });
  })();
  const env = { KMB_CLUSTER: server.address };
  const cpuFile = join(outDir, 'cpu.pb.gz');
  const cpu = await h.runCli(
    ['--json', 'debug', 'profile', '--replica-id', '0', '--duration', '1s', '--output', cpuFile],
    { env },
  );
  writing = false;
  await writer;
  assert.equal(cpu.code, 0, cpu.stderr);
  const report = JSON.parse(cpu.stdout) as { output: string; size_bytes: number; kind: string };
  assert.equal(report.output, cpuFile);
  assert.equal(report.kind, 'cpu');
  const cpuBytes = await readFile(cpuFile);
  assert.equal(cpuBytes.length, report.size_bytes);
  const cpuProfile = Profile.decode(gunzipSync(cpuBytes));
  assert.ok(cpuProfile.sample.length > 0, 'the CPU profile has samples');

  const heapFile = join(outDir, 'heap.pb.gz');
  const heap = await h.runCli(
    ['debug', 'profile', '--replica-id', '0', '--heap', '--output', heapFile],
    { env },
  );
  assert.equal(heap.code, 0, heap.stderr);
  assert.match(heap.stdout, /heap profile of replica 0/);
  assert.ok(Profile.decode(gunzipSync(await readFile(heapFile))).sample.length > 0);

  const tooLong = await h.runCli(['debug', 'profile', '--replica-id', '0', '--duration', '6m'], {
    env,
  });
  assert.equal(tooLong.code, 2, tooLong.stderr);
  const nobody = await h.runCli(['debug', 'profile', '--replica-id', '3', '--duration', '1s'], {
    env,
  });
  assert.equal(nobody.code, 1, nobody.stderr);
  assert.match(nobody.stderr, /replica 3/);
});
