// Proves `kimberlite-admin diagnostics` end to end in-process: against one live ops server (port
// 0) and one closed port, it writes a .tar.gz that both our reader and the system `tar -tzf`
// list, holding a manifest that notes the unreachable replica, the effective config, system
// info with free disk of the data dir, replicas.json with one reachable and one unreachable
// entry, the live replica's /status, /metrics and recent log lines (GET /debug/logs), and the
// tail of --log-file; a malformed address exits 2; an unwritable --output is KMB_ERR_STORAGE_IO. Also proves the recent-log ring keeps only
// its newest lineCountMax lines and that /debug/logs refuses a bad `lines`.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { RecentLogLines, recentLogLimits, recentLogLines } from '../observability/log_ring.js';
import { recentLogReply } from '../observability/log_ring.js';
import { silentLogger } from '../observability/logger.js';
import { startOpsServer } from '../observability/ops_server.js';
import type { OpsServer } from '../observability/ops_server.js';
import { runAdminCaptured } from './admin_run.test-support.js';
import { untarGzip } from './tar_writer.js';

let dir: string;
let ops: OpsServer;
let live: string;
let dead: string;

async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kmb-diag-'));
  const provider = {
    live: () => true,
    ready: () => ({ ready: true, reason: 'normal' }),
    status: () => ({ node_id: 0, status: 'normal', view: 3, is_leader: true }),
    metrics: () => Promise.resolve({ contentType: 'text/plain', body: 'kmb_diag_probe 1\n' }),
  };
  ops = await startOpsServer({ host: '127.0.0.1', port: 0, provider, logger: silentLogger() });
  live = `127.0.0.1:${ops.address.port}`;
  dead = `127.0.0.1:${await closedPort()}`;
});

after(async () => {
  await ops.close();
  await rm(dir, { recursive: true, force: true });
});

const admin = runAdminCaptured;

describe('kimberlite-admin diagnostics', () => {
  it('bundles config, system info, replica status, metrics and logs', async () => {
    recentLogLines.push('{"level":"INFO","message":"diagnostics probe line"}\n');
    const logFile = join(dir, 'server.log');
    await writeFile(logFile, 'first line\nsecond line\nlast line\n');
    const output = join(dir, 'bundle.tar.gz');
    const result = await admin([
      'diagnostics',
      '--output',
      output,
      '--metrics-addresses',
      `${live},${dead}`,
      '--data-dir',
      dir,
      '--log-file',
      logFile,
    ]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /1\/2 replicas reachable/);
    const bytes = await readFile(output);
    const files = await untarGzip(bytes);
    const text = (name: string): string => {
      const file = files.get(`kimberlite-diagnostics/${name}`);
      assert.ok(file !== undefined, `${name} missing; have ${[...files.keys()].join(', ')}`);
      return file.toString();
    };
    const base = `0_127.0.0.1_${ops.address.port}`;
    const manifest = JSON.parse(text('manifest.json')) as { members: string[]; notes: string[] };
    assert.ok(manifest.notes.some((note) => note.includes(dead) && /unreachable/.test(note)));
    assert.equal(manifest.members.length, files.size);
    const config = JSON.parse(text('config.json')) as { config: { storage: { data_dir: string } } };
    assert.equal(config.config.storage.data_dir, dir);
    const system = JSON.parse(text('system.json')) as Record<string, Record<string, unknown>>;
    assert.ok(Number(system['cpus']?.['count']) > 0);
    assert.ok(Number(system['disk']?.['free_bytes']) > 0);
    assert.equal(system['node_version'], process.version);
    const replicas = JSON.parse(text('replicas.json')) as { reachable: boolean }[];
    assert.deepEqual(
      replicas.map((r) => r.reachable),
      [true, false],
    );
    assert.equal((JSON.parse(text(`status/${base}.json`)) as { view: number }).view, 3);
    assert.equal(text(`metrics/${base}.prom`), 'kmb_diag_probe 1\n');
    assert.match(text(`logs/${base}.log`), /diagnostics probe line/);
    assert.equal(text('logs/log-file.log'), 'first line\nsecond line\nlast line\n');
    const listed = spawnSync('tar', ['-tzf', output], { encoding: 'utf8' });
    assert.equal(listed.status, 0, listed.stderr);
    assert.deepEqual(listed.stdout.trim().split('\n').sort(), [...files.keys()].sort());
  });

  it('refuses a malformed address with exit 2', async () => {
    const output = join(dir, 'x.tar.gz');
    const result = await admin(['diagnostics', '--output', output, '--metrics-addresses', 'nope']);
    assert.equal(result.code, 2);
  });

  it('reports an output path it cannot write as KMB_ERR_STORAGE_IO, not a stack trace', async () => {
    // Before: the ENOENT of the bundle's file escaped runProgram and the binary printed its
    // stack trace and exited 70.
    const output = join(dir, 'missing-dir', 'x.tar.gz');
    const result = await admin(['diagnostics', '--output', output, '--metrics-addresses', live]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /^error: KMB_ERR_STORAGE_IO: .*ENOENT.*missing-dir/);
    assert.doesNotMatch(result.stderr, /\n\s+at /);
  });
});

describe('recent log lines', () => {
  it('keeps the newest lineCountMax lines and serves a bounded tail', () => {
    const ring = new RecentLogLines();
    const total = recentLogLimits.lineCountMax + 5;
    for (let i = 0; i < total; i++) ring.push(`line ${i}\n`);
    const lines = ring.lines();
    assert.equal(lines.length, recentLogLimits.lineCountMax);
    assert.equal(lines[0], 'line 5\n');
    assert.deepEqual(ring.lines(2), [`line ${total - 2}\n`, `line ${total - 1}\n`]);
    assert.equal(recentLogReply(new URLSearchParams('lines=0')).statusCode, 400);
    assert.equal(recentLogReply(new URLSearchParams('lines=x')).statusCode, 400);
    assert.equal(recentLogReply(new URLSearchParams('lines=1')).statusCode, 200);
  });
});
