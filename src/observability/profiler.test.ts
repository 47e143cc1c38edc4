// Proves the profile endpoints against a real ops server on port 0 in this process: a 1 s CPU
// profile taken while a named function burns CPU decodes with pprof-format (the library `pprof`
// users rely on) into samples > 0 whose functions include that name; the heap profile holds the
// function that allocated retained memory; the V8 JSON formats parse as DevTools profiles; a bad
// `seconds` (0, 301, not a number) or format is refused with 400 KMB_ERR_INVALID_ARGUMENT; a
// second CPU or heap profile while one runs gets 429 KMB_ERR_PROFILE_BUSY, and so does a heap
// profile asked too soon after the last (heapTimeShareMax); and a profile whose caller goes away
// (its signal aborts, its socket closes) stops and frees the profiler. Tests that take heap
// profiles first wait out the previous one's pause (heapProfileWaitMs).

import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { Profile } from 'pprof-format';
import { Registry } from 'prom-client';
import { createLogger } from './logger.js';
import { createOpsInstruments } from './ops_metrics.js';
import { startOpsServer, type OpsServer } from './ops_server.js';
import { heapScale } from './profile_pprof.js';
import { heapProfileWaitMs, heapReadyAtMs, profileLimits, profileReply } from './profiler.js';

let server: OpsServer;
let base: string;
const instruments = createOpsInstruments(new Registry());

before(async () => {
  const logger = createLogger({ env: {}, destination: { write: () => true } });
  const provider = {
    live: () => true,
    ready: () => ({ ready: true, reason: 'normal' }),
    status: () => ({}),
    metrics: () => Promise.resolve({ contentType: 'text/plain', body: '' }),
  };
  server = await startOpsServer({ host: '127.0.0.1', port: 0, provider, logger, instruments });
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

/** Waits until a heap profile may start (the last one's pause has passed). */
async function heapReady(): Promise<void> {
  // A timer may fire a millisecond before Date.now() reaches its deadline: wait until the
  // profiler itself says a heap profile may start.
  while (heapProfileWaitMs() > 0) {
    await new Promise((resolve) => setTimeout(resolve, heapProfileWaitMs() + 2));
  }
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
  await heapReady();
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
  await heapReady();
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

test('heap profiles run one at a time: a second while one runs gets 429 at once', async () => {
  // Proves gc=1 snapshots are serialised in the process: the first call marks the heap
  // profiler busy before its first await, so a second call made right after answers 429
  // KMB_ERR_PROFILE_BUSY without collecting garbage; a third right after the first ended gets
  // 429 too, with Retry-After (heap profiles take at most 10% of the time), and runs once that
  // pause has passed.
  await heapReady();
  const first = profileReply('heap', new URLSearchParams('gc=1'));
  const second = await profileReply('heap', new URLSearchParams('gc=1'));
  assert.equal(second.statusCode, 429);
  const body = JSON.parse(String(second.body)) as { error: { code: string; message: string } };
  assert.equal(body.error.code, 'KMB_ERR_PROFILE_BUSY');
  assert.match(body.error.message, /heap profile/);
  assert.equal((await first).statusCode, 200);
  const early = await profileReply('heap', new URLSearchParams('gc=1'));
  assert.equal(early.statusCode, 429);
  assert.match(String(early.body), /at most 10% of the process's time/);
  assert.ok(Number(early.headers?.['retry-after']) >= 1);
  await heapReady();
  assert.equal((await profileReply('heap', new URLSearchParams('gc=1'))).statusCode, 200);
});

test('heapReadyAtMs pauses heap profiles for nine times their duration, at most 10 s', () => {
  // Proves the arithmetic of heapTimeShareMax (0.1): a 100 ms profile ending at 1000 allows the
  // next at 1900, a 0 ms one at once, and a 5 s one after heapCooldownMsMax (10 s), not 45 s.
  assert.equal(profileLimits.heapTimeShareMax, 0.1);
  assert.ok(Math.abs(heapReadyAtMs(900, 1000) - 1900) < 1e-9);
  assert.equal(heapReadyAtMs(1000, 1000), 1000);
  assert.equal(heapReadyAtMs(0, 5000), 5000 + profileLimits.heapCooldownMsMax);
});

const connectionLost = (error: unknown): boolean =>
  error instanceof Error && (error as { code?: string }).code === 'KMB_ERR_CONNECTION_LOST';

test('an aborted CPU profile stops at once and frees the profiler for the next', async () => {
  // Proves cancellation below HTTP: a 30 s profile whose signal aborts after 200 ms rejects
  // with KMB_ERR_CONNECTION_LOST within 5 s (a liveness bound), and a 1 s profile asked right
  // after answers 200, not 429; a heap profile whose signal already aborted rejects the same
  // way and leaves the heap profiler free.
  const client = new AbortController();
  const long = profileReply('cpu', new URLSearchParams('seconds=30'), client.signal);
  await new Promise((resolve) => setTimeout(resolve, 200));
  client.abort();
  const bound = new Promise((resolve) => setTimeout(resolve, 5000, 'still running'));
  const outcome = await Promise.race([
    long.then(
      () => 'answered',
      (e: unknown) => e,
    ),
    bound,
  ]);
  assert.ok(connectionLost(outcome), String(outcome));
  assert.equal((await profileReply('cpu', new URLSearchParams('seconds=1'))).statusCode, 200);
  const gone = new AbortController();
  gone.abort();
  await heapReady();
  await assert.rejects(profileReply('heap', new URLSearchParams(''), gone.signal), connectionLost);
  assert.equal((await profileReply('heap', new URLSearchParams(''))).statusCode, 200);
});

test('over HTTP, a profile whose client disconnects is counted as cancelled', async () => {
  // Proves the ops server wires the client's disconnect to the profile: a raw socket asks for
  // a 30 s profile and is destroyed after 300 ms; kmb_ops_profiles_cancelled_total{kind="cpu"}
  // reaches 1 within 5 s and a new profile request answers 200.
  const socket = connect(server.address.port, '127.0.0.1');
  socket.on('error', () => undefined);
  socket.write('GET /debug/pprof/profile?seconds=30 HTTP/1.1\r\nhost: ops\r\n\r\n');
  await new Promise((resolve) => setTimeout(resolve, 300));
  socket.destroy();
  const deadlineMs = Date.now() + 5000;
  while (instruments.profilesCancelledTotal.cpu.value === 0 && Date.now() < deadlineMs) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  assert.equal(instruments.profilesCancelledTotal.cpu.value, 1);
  assert.equal((await fetchBytes('/debug/pprof/profile?seconds=1')).status, 200);
});
