// Proves the resource sampler's arithmetic and its honesty: /proc/self/io is parsed into
// syscalls and storage bytes (a file missing a field is refused), filesystem usage is computed
// as df does, rates are deltas over the elapsed time between two samples (network from the
// node's byte counter, disk from the I/O file), an absent I/O file yields NaN rather than an
// idle 0, and memory and disk usage are taken from the real process and data directory.

import { strict as assert } from 'node:assert';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { Metrics } from './metrics.js';
import { ResourceSampler, parseProcIo, usedPercent } from './resource_metrics.js';

const io = (syscr: number, syscw: number, read: number, write: number): string =>
  `rchar: 1\nwchar: 2\nsyscr: ${syscr}\nsyscw: ${syscw}\nread_bytes: ${read}\n` +
  `write_bytes: ${write}\ncancelled_write_bytes: 0\n`;

test('parses /proc/self/io and computes usage as df does', () => {
  assert.deepEqual(parseProcIo(io(10, 5, 4096, 8192)), { syscalls: 15, storageBytes: 12288 });
  assert.equal(parseProcIo('rchar: 1\nsyscr: 3\n'), null);
  assert.equal(usedPercent({ blocks: 100, bfree: 40, bavail: 30 }), (60 / 90) * 100);
  assert.equal(usedPercent({ blocks: 0, bfree: 0, bavail: 0 }), 0);
});

test('rates are deltas over elapsed time; an absent I/O file is NaN', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'kmb-resource-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const procIoPath = join(dir, 'io');
  await writeFile(procIoPath, io(100, 100, 0, 0));
  const metrics = new Metrics({ nodeId: 0, processMetrics: false });
  let networkBytes = 1000;
  const rates: number[] = [];
  const sampler = new ResourceSampler({
    metrics,
    dataDir: dir,
    networkBytes: () => networkBytes,
    procIoPath,
    onSample: (seconds) => rates.push(seconds),
  });
  // Taken before the first sample: the sampler's own interval starts inside sample().
  const startedMs = performance.now();
  sampler.sample();
  await new Promise((resolve) => setTimeout(resolve, 200));
  networkBytes += 5000;
  await writeFile(procIoPath, io(150, 250, 4096, 1_000_000));
  sampler.sample();
  const seconds = rates[0] ?? 0;
  assert.ok(seconds > 0 && seconds <= (performance.now() - startedMs) / 1000);
  const vsr = metrics.vsr;
  assert.ok(Math.abs(vsr.networkBandwidthBytesPerSecond.value - 5000 / seconds) < 1e-6);
  assert.ok(Math.abs(vsr.diskIops.value - 200 / seconds) < 1e-6);
  assert.ok(Math.abs(vsr.diskBandwidthBytesPerSecond.value - 1_004_096 / seconds) < 1e-6);
  assert.ok(vsr.memoryUsedBytes.value > 1024 * 1024);
  assert.ok(vsr.cpuUtilizationPercent.value >= 0);
  const usage = metrics.storageDiskUsagePercent.value;
  assert.ok(usage > 0 && usage <= 100, `disk usage ${usage}`);

  const blind = new ResourceSampler({
    metrics,
    dataDir: dir,
    networkBytes: () => 0,
    procIoPath: join(dir, 'absent'),
  });
  blind.sample();
  await new Promise((resolve) => setTimeout(resolve, 20));
  blind.sample();
  assert.ok(Number.isNaN(vsr.diskIops.value));
  assert.ok(Number.isNaN(vsr.diskBandwidthBytesPerSecond.value));
});
