// Restart time against journal size: a single node is filled with 100,000 and then 1,000,000
// 100-byte events (appended 1,000 per request by 16 sessions, fsync on), stopped, and started
// again on its data directory. Restart time is from spawning the process to its "Node ready" log
// line: superblock and journal read, every record's checksums and the hash chain verified, every
// command replayed through the kernel (per-stream chain links recomputed). The resident memory
// of the ready process is read from /proc; its growth between the two sizes is reported per
// million events.
//
// It measures and prints; it never passes or fails on time (HOUSE_RULES §9).
//   node --import tsx bench/restart.ts [--small] [--json]
// With --json the last line is one JSON object: restart_s_100k, restart_s_1m, rss_mb_1m, ...

import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, startServerProcess } from './cluster_process.js';
import { createBenchStream, runLoad } from './loader.js';

const argv = process.argv.slice(2);
const small = argv.includes('--small');
const sizes = small ? [10_000] : [100_000, 1_000_000];
const eventsPerAppend = 1_000;

interface Point {
  readonly events: number;
  readonly journalBytes: number;
  readonly restartSeconds: number;
  readonly rssMb: number;
}

function rssMbOf(child: ChildProcess): number {
  const status = readFileSync(`/proc/${child.pid}/status`, 'utf8');
  const match = /VmRSS:\s+(\d+) kB/.exec(status);
  return match === null ? NaN : Number(match[1]) / 1024;
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  await exited;
}

/** The journal's size as the node reports it (kmb_log_size_bytes). */
async function logSizeBytes(opsAddress: string): Promise<number> {
  const text = await (await fetch(`http://${opsAddress}/metrics`)).text();
  const match = /^kmb_log_size_bytes\{[^}]*\} (\d+)/m.exec(text);
  return match === null ? NaN : Number(match[1]);
}

async function main(): Promise<void> {
  const root = await mkdtemp(join(tmpdir(), 'kmb-restart-'));
  const address = `127.0.0.1:${await freePort()}`;
  const ops = `127.0.0.1:${await freePort()}`;
  const args = ['--address', address, '--metrics-address', ops, '--data-dir', join(root, 'data')];
  const points: Point[] = [];
  let child = await startServerProcess(args);
  try {
    const stream = await createBenchStream(address);
    let events = 0;
    for (const target of sizes) {
      while (events < target) {
        const spec = {
          sessions: 16,
          eventsPerAppend,
          durationMs: 200,
          eventSizeBytes: 100,
          connectionCount: 4,
        };
        events += (await runLoad(address, spec, stream)).events;
      }
      await stop(child);
      const started = performance.now();
      child = await startServerProcess(args);
      const restartSeconds = (performance.now() - started) / 1000;
      const journalBytes = await logSizeBytes(ops);
      points.push({ events, journalBytes, restartSeconds, rssMb: rssMbOf(child) });
    }
  } finally {
    await stop(child);
    await rm(root, { recursive: true, force: true });
  }
  report(points);
}

function report(points: readonly Point[]): void {
  console.log('restart (single node, fsync on, 100-byte events, 1,000 per append):');
  for (const point of points) {
    console.log(
      `  ${point.events.toLocaleString('en-US')} events, ` +
        `${(point.journalBytes / 1e6).toFixed(0)} MB journal: ready in ` +
        `${point.restartSeconds.toFixed(2)} s, ${point.rssMb.toFixed(0)} MB resident`,
    );
  }
  // Memory per million events: the growth of resident memory between the two sizes, so the
  // process's fixed cost (code, buffers) is not charged to the events.
  const [first, last] = [points[0], points.at(-1)];
  const perMillion =
    first !== undefined && last !== undefined && last.events > first.events
      ? ((last.rssMb - first.rssMb) * 1e6) / (last.events - first.events)
      : null;
  if (perMillion !== null) {
    console.log(`  resident memory grows ${perMillion.toFixed(1)} MB per million events`);
  }
  const at = (events: number): Point | undefined => points.find((p) => p.events >= events);
  const million = at(1_000_000);
  const json = {
    restart_s_100k: at(100_000)?.restartSeconds ?? null,
    restart_s_1m: million?.restartSeconds ?? null,
    rss_mb_1m: million?.rssMb ?? null,
    rss_mb_per_million_events: perMillion,
    restart_points: points,
  };
  if (argv.includes('--json')) console.log(JSON.stringify(json));
}

await main();
