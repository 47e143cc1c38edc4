// Proves the profile endpoints against a real ops server on port 0 in this process: a 1 s CPU
// profile taken while a named function burns CPU decodes with pprof-format (the library `pprof`
// users rely on) into samples > 0 whose functions include that name; the heap profile holds the
// function that allocated retained memory; the V8 JSON formats parse as DevTools profiles; a bad
// `seconds` (0, 301, not a number) or format is refused with 400 KMB_ERR_INVALID_ARGUMENT; and a
// second CPU profile while one runs gets 429 KMB_ERR_PROFILE_BUSY.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { Profile } from 'pprof-format';
import { createLogger } from './logger.js';
import { startOpsServer, type OpsServer } from './ops_server.js';
import { heapScale } from './profile_pprof.js';

let server: OpsServer;
let base: string;

before(async () => {
  const logger = createLogger({ env: {}, destination: { write: () => true } });
  const provider = {
    live: () => true,
    ready: () => ({ ready: true, reason: 'normal' }),
    status: () => ({}),
    metrics: () => Promise.resolve({ contentType: 'text/plain', body: '' }),
  };
  server = await startOpsServer({ host: '127.0.0.1', port: 0, provider, logger });
  base = `http://127.0.0.1:${server.address.port}`;
});

after(async () => {
  await server.close();
});

/** Burns CPU in slices, yielding between them so the server's timers and sockets run. */
async function burnCpuForProfileTest(durationMs: number): Promise<number> {
  const endMs = Date.now() + durationMs;
  let x = 0;
  while (Date.now() < endMs) {
    const sliceEndMs = Date.now() + 20;
    while (Date.now() < sliceEndMs) x += Math.sqrt(x + 1);
    await new Promise((resolve) => setImmediate(resolve));
  }
  return x;
}

const retained: unknown[] = [];

function allocateRetainedForHeapTest(): void {
  for (let i = 0; i < 200_000; i++) retained.push({ index: i, text: `retained-${i}`.repeat(4) });
}

function functionNames(profile: Profile): Set<string> {
  const names = new Set<string>();
  for (const fn of profile.function) {
    names.add(profile.stringTable.strings[Number(fn.name)] ?? '');
  }
  return names;
}

function sampleTypes(profile: Profile): string[] {
  return profile.sampleType.map((t) => profile.stringTable.strings[Number(t.type)] ?? '');
}

async function fetchBytes(path: string): Promise<{ status: number; body: Buffer }> {
  const response = await fetch(`${base}${path}`);
  return { status: response.status, body: Buffer.from(await response.arrayBuffer()) };
}

test('a 1 s CPU profile decodes as pprof with samples and the busy function', async () => {
  const [reply] = await Promise.all([
    fetchBytes('/debug/pprof/profile?seconds=1'),
    burnCpuForProfileTest(1300),
  ]);
  assert.equal(reply.status, 200);
  assert.equal(reply.body[0], 0x1f, 'gzip magic');
  const profile = Profile.decode(gunzipSync(reply.body));
  assert.deepEqual(sampleTypes(profile), ['samples', 'cpu']);
  const sampleCount = profile.sample.reduce((sum, s) => sum + Number(s.value[0]), 0);
  assert.ok(sampleCount > 0, `samples ${sampleCount}`);
  assert.ok(functionNames(profile).has('burnCpuForProfileTest'));
  const locationIds = new Set(profile.location.map((l) => Number(l.id)));
  for (const sample of profile.sample) {
    for (const id of sample.locationId) assert.ok(locationIds.has(Number(id)));
  }
  assert.ok(Number(profile.durationNanos) >= 900_000_000);
});

test('the heap profile decodes as pprof and names the allocating function', async () => {
  allocateRetainedForHeapTest();
  const reply = await fetchBytes('/debug/pprof/heap');
  assert.equal(reply.status, 200);
  const profile = Profile.decode(gunzipSync(reply.body));
  assert.deepEqual(sampleTypes(profile), ['inuse_objects', 'inuse_space']);
  const spaceBytes = profile.sample.reduce((sum, s) => sum + Number(s.value[1]), 0);
  assert.ok(spaceBytes > 1024 * 1024, `in-use space ${spaceBytes}`);
  assert.ok(functionNames(profile).has('allocateRetainedForHeapTest'));
  assert.ok(retained.length > 0);
});

test('the V8 JSON formats parse as DevTools profiles', async () => {
  const [cpu] = await Promise.all([
    fetchBytes('/debug/pprof/profile?seconds=1&format=cpuprofile'),
    burnCpuForProfileTest(1200),
  ]);
  assert.equal(cpu.status, 200);
  const cpuProfile = JSON.parse(cpu.body.toString()) as { nodes: unknown[]; samples: unknown[] };
  assert.ok(cpuProfile.nodes.length > 1 && cpuProfile.samples.length > 0);
  const heap = await fetchBytes('/debug/pprof/heap?format=heapprofile&gc=1');
  assert.equal(heap.status, 200);
  const heapProfile = JSON.parse(heap.body.toString()) as { head: { children: unknown[] } };
  assert.ok(heapProfile.head.children.length > 0);
});

test('bad seconds or format get 400 KMB_ERR_INVALID_ARGUMENT', async () => {
  const bad = [
    '/debug/pprof/profile?seconds=0',
    '/debug/pprof/profile?seconds=301',
    '/debug/pprof/profile?seconds=abc',
    '/debug/pprof/profile?seconds=1.5',
    '/debug/pprof/profile?seconds=1&format=svg',
    '/debug/pprof/heap?format=cpuprofile',
    '/debug/pprof/heap?gc=yes',
  ];
  for (const path of bad) {
    const reply = await fetchBytes(path);
    assert.equal(reply.status, 400, path);
    const body = JSON.parse(reply.body.toString()) as { error: { code: string } };
    assert.equal(body.error.code, 'KMB_ERR_INVALID_ARGUMENT', path);
  }
});

test('a second CPU profile while one runs gets 429 KMB_ERR_PROFILE_BUSY', async () => {
  const first = fetchBytes('/debug/pprof/profile?seconds=1');
  await new Promise((resolve) => setTimeout(resolve, 200));
  const second = await fetchBytes('/debug/pprof/profile?seconds=1');
  assert.equal(second.status, 429);
  const body = JSON.parse(second.body.toString()) as { error: { code: string } };
  assert.equal(body.error.code, 'KMB_ERR_PROFILE_BUSY');
  assert.equal((await first).status, 200);
});

test('heapScale undoes V8 sampling: small objects count many times, huge ones once', () => {
  assert.ok(Math.abs(heapScale(512 * 1024, 512 * 1024) - 1 / (1 - Math.exp(-1))) < 1e-12);
  assert.ok(heapScale(64, 512 * 1024) > 8000);
  assert.ok(Math.abs(heapScale(100 * 1024 * 1024, 512 * 1024) - 1) < 1e-9);
});
