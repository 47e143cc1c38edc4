// Proves that a node whose disk fills up stays up, refuses writes with KMB_ERR_STORAGE_FULL,
// keeps serving reads, says so on /health/ready (503 disk_full), /status and /metrics, and takes
// writes again once space returns, without a restart; that nothing acknowledged is lost and
// `kimberlite-admin verify` is clean; and that a node restarted on a full disk reports not ready
// (disk_full) and still serves reads.
//
// How: a 20 MB tmpfs is mounted (root only; without it the test is skipped with the reason) and
// a single node runs with its data directory there and 4 MiB segments. While one client
// appends, the test fills the disk with a ballast file until ENOSPC. A second client then
// probes: its append is refused with KMB_ERR_STORAGE_FULL, its read is served. Deleting the
// ballast lets the first client's appends resume; every acknowledged event must then be in the
// stream, in order, and no refused one. Twice: with a 2 MiB free-space floor (the node refuses
// writes when it measures the floor crossed; then the node is also restarted on the full disk),
// and with no floor, where only the journal's own write answered ENOSPC can tell the node: the
// write in flight then waits, neither acknowledged nor failed, and completes once space returns.
//
// And in a 3-replica cluster whose backup 2 has its data directory on the tmpfs: filling it
// leaves the backup up and 503 disk_full while the leader and backup 1 go on acknowledging
// writes; the backup drops the prepares beyond its bound (counted) instead of queueing them
// without end; once space returns it repairs what it dropped, and every replica's directory
// verifies with the same log head.

import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import { mkdtemp, open, rm, rmdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { TestContext } from 'node:test';
import { KmbError, errorCodes } from '../src/client/client.js';
import type { Client } from '../src/client/client.js';
import { freePorts } from './cluster_harness.js';
import { Harness, fetchOps, parseMetrics, sampleValue, sleep } from './harness.js';
import type { ServerProcess } from './harness.js';

const MiB = 1024 * 1024;
/** Liveness bound for each state change the test waits for (the node checks every second). */
const changeTimeoutMs = 15_000;

/** Mounts a 20 MB tmpfs on a fresh directory; the reason it could not, as a string. */
async function mountTmpfs(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'kmb-diskfull-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=20m', 'tmpfs', dir], { stdio: 'pipe' });
  } catch (error) {
    await rmdir(dir);
    const stderr = (error as { stderr?: Buffer }).stderr?.toString().trim();
    throw new Error(stderr === undefined || stderr === '' ? String(error) : stderr);
  }
  return dir;
}

/** Writes a ballast file until the filesystem refuses (ENOSPC); it is then full. */
async function fillDisk(path: string): Promise<void> {
  const handle = await open(path, 'w');
  try {
    for (const chunkBytes of [MiB, 4096]) {
      const chunk = Buffer.alloc(chunkBytes, 0x5a);
      for (;;) {
        try {
          await handle.write(chunk);
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code === 'ENOSPC') break;
          throw error;
        }
      }
    }
  } finally {
    await handle.close().catch(() => undefined);
  }
}

async function readiness(server: ServerProcess): Promise<{ status: number; reason: unknown }> {
  const response = await fetchOps(server, '/health/ready');
  return { status: response.status, reason: JSON.parse(response.text).reason };
}

async function waitForReadiness(server: ServerProcess, status: number, what: string) {
  const deadline = Date.now() + changeTimeoutMs;
  for (;;) {
    const now = await readiness(server);
    if (now.status === status) return now;
    assert.ok(Date.now() < deadline, `${what}: /health/ready stayed ${JSON.stringify(now)}`);
    await sleep(100);
  }
}

interface Appender {
  readonly acked: string[];
  readonly refused: string[];
  stop: boolean;
  /** The append loop, settled once it stopped. */
  done: Promise<void>;
}

/** Appends one event (1 KiB) at a time until told to stop; a refusal is recorded and retried. */
async function appendLoop(
  client: Client,
  ids: { tenantId: number; streamId: number },
  a: Appender,
  eventBytes = 1024,
) {
  for (let sequence = 0; !a.stop; sequence++) {
    const event = `e${sequence}-`.padEnd(eventBytes, 'x');
    try {
      await client.append({ ...ids, events: [event] });
      a.acked.push(event);
    } catch (error) {
      if (!(error instanceof KmbError) || error.code !== errorCodes.storage_full) throw error;
      a.refused.push(event);
      await sleep(50);
    }
  }
}

async function streamTexts(client: Client, ids: { tenantId: number; streamId: number }) {
  const texts: string[] = [];
  for await (const event of client.events(ids)) texts.push(Buffer.from(event.data).toString());
  return texts;
}

interface Scenario {
  readonly h: Harness;
  readonly mount: string;
  readonly server: ServerProcess;
  readonly ids: { tenantId: number; streamId: number };
  readonly appender: Appender;
  readonly prober: Client;
}

/** Mounts the tmpfs (or skips, printing why); it is unmounted after the test. */
async function tmpfsFor(t: TestContext): Promise<string | null> {
  let mount: string;
  try {
    mount = await mountTmpfs();
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    process.stdout.write(`# skipped: cannot mount a tmpfs (${reason})\n`);
    t.skip(`cannot mount a tmpfs: ${reason}`);
    return null;
  }
  // Registered before the harness's own cleanup, so that a failing cleanup cannot skip it. A
  // lazy unmount detaches the tmpfs at once, even while a server still holds files there.
  t.after(async () => {
    execFileSync('umount', ['-l', mount]);
    await rmdir(mount);
  });
  return mount;
}

/** Mounts the tmpfs (or skips), starts the node, appends while filling the disk until full. */
async function fillWhileAppending(t: TestContext, floorBytes: number): Promise<Scenario | null> {
  const mount = await tmpfsFor(t);
  if (mount === null) return null;
  const h = new Harness(t);
  const env = {
    KMB_STORAGE_DISK_FREE_BYTES_MIN: String(floorBytes),
    KMB_STORAGE_SEGMENT_SIZE_BYTES: String(4 * MiB),
  };
  const server = await h.startServer({ dataDir: join(mount, 'data'), env });
  const writer = await h.connect({ addresses: [server.address] });
  const tenant = await writer.createTenant('full');
  const stream = await writer.createStream({ tenantId: tenant.tenantId, name: 's' });
  const ids = { tenantId: tenant.tenantId, streamId: stream.streamId };
  const appender: Appender = { acked: [], refused: [], stop: false, done: Promise.resolve() };
  appender.done = appendLoop(writer, ids, appender);
  while (appender.acked.length < 50) await sleep(10);
  await fillDisk(join(mount, 'ballast'));
  assert.deepEqual(await waitForReadiness(server, 503, 'disk full'), {
    status: 503,
    reason: 'disk_full',
  });
  const prober = await h.connect({ addresses: [server.address] });
  return { h, mount, server, ids, appender, prober };
}

/** While full: writes refused, reads served, /status and /metrics say so. */
async function checkFull(s: Scenario): Promise<void> {
  await assert.rejects(s.prober.append({ ...s.ids, events: ['refused'] }), {
    code: errorCodes.storage_full,
  });
  const whileFull = await streamTexts(s.prober, s.ids);
  assert.ok(whileFull.length >= 50, `reads are served while full (${whileFull.length} events)`);
  const status = JSON.parse((await fetchOps(s.server, '/status')).text);
  assert.equal(status.disk_full, true);
  const samples = parseMetrics((await fetchOps(s.server, '/metrics')).text);
  assert.equal(sampleValue(samples, 'kmb_storage_disk_full', { node_id: '0' }), 1);
  const refusedCount = sampleValue(samples, 'kmb_errors_total', {
    node_id: '0',
    code: errorCodes.storage_full,
  });
  assert.ok((refusedCount ?? 0) >= 1, `refusals are counted (${refusedCount})`);
}

/** Deletes the ballast; writes resume without a restart, and exactly the acked events exist. */
async function checkResumes(s: Scenario): Promise<void> {
  await rm(join(s.mount, 'ballast'));
  await waitForReadiness(s.server, 200, 'space returned');
  const ackedBefore = s.appender.acked.length;
  while (s.appender.acked.length < ackedBefore + 20) await sleep(10);
  s.appender.stop = true;
  await s.appender.done;
  assert.ok(s.server.running, 'the node never stopped');
  assert.deepEqual(await streamTexts(s.prober, s.ids), s.appender.acked, 'exactly the acked');
  const messages = s.server.lines.map((line) => `${line.level} ${line.message}`);
  assert.ok(messages.includes('ERROR Disk full: writes refused until space returns'));
  assert.ok(messages.includes('INFO Disk space returned: writes resume'));
  assert.ok(!messages.some((m) => m.includes('Fatal')), messages.join('\n'));
  assert.equal((await s.server.stop()).code, 0);
  const verify = await s.h.runAdmin(['verify', '--data-dir', join(s.mount, 'data')]);
  assert.equal(verify.code, 0, `verify: ${verify.stdout}\n${verify.stderr}`);
}

test('below the free-space floor, writes are refused and reads served until space returns', async (t) => {
  const s = await fillWhileAppending(t, 2 * MiB);
  if (s === null) return;
  await checkFull(s);
  await checkResumes(s);
  assert.ok(s.appender.refused.length >= 1, 'the appending client was refused too');

  // Restarted with the disk full: not ready for writes, reads served.
  await fillDisk(join(s.mount, 'ballast'));
  const restarted = await s.h.restart(s.server);
  assert.deepEqual(await readiness(restarted), { status: 503, reason: 'disk_full' });
  const reader = await s.h.connect({ addresses: [restarted.address] });
  assert.deepEqual(await streamTexts(reader, s.ids), s.appender.acked);
});

test('with no floor, a journal write answered ENOSPC waits, then completes', async (t) => {
  const s = await fillWhileAppending(t, 0);
  if (s === null) return;
  await checkFull(s);
  // The writer's append in flight waits in the journal: never acknowledged while full.
  const acked = s.appender.acked.length;
  await sleep(1000);
  assert.equal(s.appender.acked.length, acked, 'nothing is acknowledged while the disk is full');
  await checkResumes(s);
});

/** `kimberlite-admin verify --json` of a stopped replica: clean, and its log head. */
async function verifiedHead(h: Harness, dataDir: string): Promise<unknown[]> {
  const run = await h.runAdmin(['verify', '--data-dir', dataDir, '--json']);
  assert.equal(run.code, 0, `verify ${dataDir}: ${run.stdout}\n${run.stderr}`);
  const report = JSON.parse(run.stdout) as { storage: { opMax: number; headChecksum: string } };
  return [report.storage.opMax, report.storage.headChecksum];
}

/** Waits until every server reports the same op and commit numbers (the backup caught up). */
async function waitForSameHead(servers: readonly ServerProcess[]): Promise<void> {
  const deadline = Date.now() + changeTimeoutMs;
  for (;;) {
    const heads = await Promise.all(
      servers.map(async (server) => {
        const status = JSON.parse((await fetchOps(server, '/status')).text);
        return `${status.op_number}/${status.commit_number}`;
      }),
    );
    if (heads.every((head) => head === heads[0])) return;
    assert.ok(Date.now() < deadline, `replicas did not converge: ${heads.join(' ')}`);
    await sleep(100);
  }
}

async function droppedMessages(server: ServerProcess): Promise<number> {
  const samples = parseMetrics((await fetchOps(server, '/metrics')).text);
  return sampleValue(samples, 'kmb_storage_disk_full_dropped_messages_total') ?? 0;
}

test('a backup whose disk fills stays up, drops prepares, and repairs them later', async (t) => {
  const mount = await tmpfsFor(t);
  if (mount === null) return;
  const h = new Harness(t);
  const root = await h.tempDir('kmb-diskfull-cluster-');
  const addresses = (await freePorts(3)).map((port) => `127.0.0.1:${port}`);
  const dataDirs = [join(root, 'node-0'), join(root, 'node-1'), join(mount, 'data')];
  const peers = ['--cluster-peers', addresses.join(','), '--cluster-name', 'df'];
  // The backup on the tmpfs has no floor: only its journal meeting ENOSPC tells it.
  const servers = await Promise.all(
    addresses.map((address, id) =>
      h.startServer({
        address,
        dataDir: dataDirs[id] ?? '',
        args: ['--node-id', String(id), ...peers],
        env: id === 2 ? { KMB_STORAGE_DISK_FREE_BYTES_MIN: '0' } : {},
      }),
    ),
  );
  const backup = servers[2] as ServerProcess;
  const writer = await h.connect({ addresses });
  const tenant = await writer.createTenant('full');
  const stream = await writer.createStream({ tenantId: tenant.tenantId, name: 's' });
  const ids = { tenantId: tenant.tenantId, streamId: stream.streamId };
  // 16 KiB events: the backup soon runs through the free space its journal laid down.
  const appender: Appender = { acked: [], refused: [], stop: false, done: Promise.resolve() };
  appender.done = appendLoop(writer, ids, appender, 16 * 1024);
  while (appender.acked.length < 20) await sleep(10);

  await fillDisk(join(mount, 'ballast'));
  await waitForReadiness(backup, 503, 'the backup disk full');
  assert.equal((await readiness(backup)).reason, 'disk_full');
  const deadline = Date.now() + changeTimeoutMs;
  while ((await droppedMessages(backup)) === 0) {
    assert.ok(Date.now() < deadline, 'the full backup drops prepares beyond its bound');
    await sleep(100);
  }
  const ackedWhileFull = appender.acked.length;
  while (appender.acked.length < ackedWhileFull + 50) await sleep(10);
  assert.ok(backup.running, 'the full backup stays up');

  await rm(join(mount, 'ballast'));
  await waitForReadiness(backup, 200, 'the backup resumed');
  appender.stop = true;
  await appender.done;
  await writer.close();
  const messages = backup.lines.map((line) => `${line.level} ${line.message}`);
  assert.ok(messages.includes('ERROR Disk full: writes refused until space returns'));
  assert.ok(!messages.some((m) => m.includes('Fatal')), messages.join('\n'));
  // Once the backup has repaired what it dropped, every replica stops cleanly, verifies clean,
  // and the backup holds the same log head as the others.
  await waitForSameHead(servers);
  for (const server of servers) assert.equal((await server.stop()).code, 0);
  const heads = await Promise.all(dataDirs.map((dir) => verifiedHead(h, dir)));
  assert.deepEqual(heads[2], heads[0], "the backup holds the leader's log head");
  assert.deepEqual(heads[1], heads[0]);
});
