// The operator tools against a real kimberlite-server process (bin/, so `npm run build` first).

import { strict as assert } from 'node:assert';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { Profile } from 'pprof-format';
import { untarGzip } from '../src/cli/tar_writer.js';
import { Harness, fetchOps } from './harness.js';

async function fetchBytes(url: string): Promise<{ status: number; body: Buffer }> {
  const response = await fetch(url);
  return { status: response.status, body: Buffer.from(await response.arrayBuffer()) };
}

function functionNames(profile: Profile): string[] {
  return profile.function.map((fn) => profile.stringTable.strings[Number(fn.name)] ?? '');
}

test('profiles, recent logs, diagnostics and an audit export round trip', async (t) => {
  // Proves on a real server: a 1 s CPU profile taken while clients write decodes as pprof with
  // samples and named functions, the heap profile too, and seconds=0 is refused with 400;
  // /debug/logs holds the server's "Node ready" line; `kimberlite-admin diagnostics` bundles the
  // server's status, metrics and logs; after a clean stop, `audit export` of today's commands
  // lists each write with the actor and reason the client gave, `audit verify` passes it
  // (exit 0), and the same file with one byte of an actor changed fails verify (exit 1) naming
  // the command.
  const h = new Harness(t);
  const dataDir = await h.tempDir();
  const outDir = await h.tempDir('kmb-tools-');
  const server = await h.startServer({ dataDir });
  const db = await h.connect({ addresses: [server.address], actor: 'nurse.joy' });
  const tenant = await db.createTenant('clinic', { reason: 'onboarding' });
  const stream = await db.createStream({ tenantId: tenant.tenantId, name: 'charts' });
  let writing = true;
  const writer = (async () => {
    let index = 0;
    while (writing) {
      const events = [`visit ${index}`];
      await db.append({ tenantId: tenant.tenantId, streamId: stream.streamId, events });
      index += 1;
    }
    return index;
  })();
  const cpu = await fetchBytes(`${server.opsUrl}/debug/pprof/profile?seconds=1`);
  writing = false;
  const appendCount = await writer;
  assert.ok(appendCount > 0, 'the writer appended while the profile ran');
  assert.equal(cpu.status, 200);
  const cpuProfile = Profile.decode(gunzipSync(cpu.body));
  assert.ok(cpuProfile.sample.length > 0);
  assert.ok(functionNames(cpuProfile).some((name) => name.length > 0 && !name.startsWith('(')));
  const heap = await fetchBytes(`${server.opsUrl}/debug/pprof/heap`);
  assert.equal(heap.status, 200);
  assert.ok(Profile.decode(gunzipSync(heap.body)).sample.length > 0);
  assert.equal((await fetchOps(server, '/debug/pprof/profile?seconds=0')).status, 400);
  assert.match((await fetchOps(server, '/debug/logs')).text, /"Node ready"/);

  const bundlePath = join(outDir, 'diagnostics.tar.gz');
  const diagnostics = await h.runAdmin([
    'diagnostics',
    '--output',
    bundlePath,
    '--metrics-addresses',
    server.metricsAddress,
    '--data-dir',
    dataDir,
  ]);
  assert.equal(diagnostics.code, 0, diagnostics.stderr);
  const files = await untarGzip(await readFile(bundlePath));
  const member = (suffix: string): string =>
    [...files.entries()].find(([name]) => name.endsWith(suffix))?.[1].toString() ?? '';
  assert.match(member('.prom'), /kmb_log_entries_total/);
  assert.match(member('.log'), /Node ready/);
  assert.equal((JSON.parse(member('.json')) as { node_id?: number }).node_id ?? 0, 0);

  await db.close();
  await server.stop();
  const dayMs = 86_400_000;
  const start = new Date(Date.now() - dayMs).toISOString().slice(0, 10);
  const end = new Date(Date.now() + dayMs).toISOString().slice(0, 10);
  const exportPath = join(outDir, 'audit.json');
  const args = ['audit', 'export', '--data-dir', dataDir, '--start', start, '--end', end];
  const exported = await h.runAdmin([...args, '--format', 'json', '--output', exportPath]);
  assert.equal(exported.code, 0, exported.stderr);
  const text = await readFile(exportPath, 'utf8');
  const doc = JSON.parse(text) as {
    prepares: {
      commands: { kind: string | null; actor: string | null; reason: string | null }[];
    }[];
  };
  const commands = doc.prepares.flatMap((p) => p.commands).filter((c) => c.kind !== null);
  assert.equal(commands.length, 2 + appendCount);
  assert.ok(commands.every((c) => c.actor === 'nurse.joy'));
  assert.equal(commands[0]?.reason, 'onboarding');
  const verified = await h.runAdmin(['audit', 'verify', exportPath]);
  assert.equal(verified.code, 0, verified.stdout + verified.stderr);
  const tamperedPath = `${exportPath}.tampered`;
  await writeFile(tamperedPath, text.replace('"nurse.joy"', '"nurse.jox"'));
  const failed = await h.runAdmin(['audit', 'verify', tamperedPath]);
  assert.equal(failed.code, 1);
  assert.match(failed.stdout, /First bad entry: prepares\[\d+\] \(op \d+\) command \d+: actor/);
});
