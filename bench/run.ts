// The benchmark: single-node append throughput and latency with fsync on, against a peer
// measured on the same machine in the same run. It starts a real kimberlite-server process on a
// temporary data directory, drives it with many concurrent client sessions over a few TCP
// connections (each session has one request in flight, as the protocol requires), and records
// every request's latency. The peer is the disk itself: a loop that appends the same bytes to a
// file and fdatasyncs in batches of the same size — the ceiling any durable log on this disk has.
//
// It measures and prints; it never passes or fails on time (HOUSE_RULES §9).
//   npm run bench                 full run (several seconds per scenario)
//   npm run bench -- --quick      short run
//   npm run bench -- --json       also print one JSON object as the last line
//   --small                       tiny run used inside `npm test` so the benchmark cannot rot

import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir, cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { serverNodeFlags } from '../src/cli/node_flags.js';
import { createBenchStream, runLoad } from './loader.js';
import type { LoadResult } from './loader.js';

interface Scenario {
  readonly name: string;
  readonly sessions: number;
  readonly eventsPerAppend: number;
}

/** One scenario's load result, named. */
type Result = LoadResult & { readonly scenario: string };

const args = new Set(process.argv.slice(2));
const small = args.has('--small');
const quick = args.has('--quick');
const durationMs = small ? 500 : quick ? 2000 : 6000;
const eventSizeBytes = 100;
const connectionCount = 4;

const scenarios: Scenario[] = small
  ? [{ name: 'append 1 event, 16 sessions', sessions: 16, eventsPerAppend: 1 }]
  : [
      { name: 'append 1 event, 1 session', sessions: 1, eventsPerAppend: 1 },
      { name: 'append 1 event, 64 sessions', sessions: 64, eventsPerAppend: 1 },
      { name: 'append 1 event, 256 sessions', sessions: 256, eventsPerAppend: 1 },
      { name: 'append 10 events, 64 sessions', sessions: 64, eventsPerAppend: 10 },
      { name: 'append 100 events, 16 sessions', sessions: 16, eventsPerAppend: 100 },
    ];

async function startServer(dataDir: string): Promise<{ child: ChildProcess; address: string }> {
  const child = spawn(
    process.execPath,
    [
      ...serverNodeFlags,
      'bin/kimberlite-server.js',
      '--address',
      '127.0.0.1:0',
      '--metrics-address',
      '127.0.0.1:0',
      '--data-dir',
      dataDir,
      '--cluster-name',
      'bench',
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const lines = createInterface({ input: child.stdout! });
  child.stdout!.resume();
  const address = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('server did not become ready')), 30_000);
    lines.on('line', (line) => {
      try {
        const entry = JSON.parse(line) as { message?: string; fields?: { address?: string } };
        if (entry.message === 'Node ready' && entry.fields?.address !== undefined) {
          clearTimeout(timer);
          resolve(entry.fields.address);
        }
      } catch {
        // Not a log line.
      }
    });
    child.once('exit', (code) => reject(new Error(`server exited with ${String(code)}`)));
  });
  return { child, address };
}

async function runScenario(
  address: string,
  scenario: Scenario,
  tenantStream: [number, number],
): Promise<Result> {
  const spec = {
    sessions: scenario.sessions,
    eventsPerAppend: scenario.eventsPerAppend,
    durationMs,
    eventSizeBytes,
    connectionCount,
  };
  const result = await runLoad(address, spec, tenantStream);
  return { ...result, scenario: scenario.name };
}

/** The peer: append `batch` records of the same size to a file, fdatasync, repeat. */
async function diskPeer(
  dir: string,
  recordsPerSync: number,
): Promise<{ recordsPerSecond: number; syncMsP50: number }> {
  const handle = await open(join(dir, 'peer.log'), 'a');
  const record = Buffer.alloc(eventSizeBytes + 64, 0x61);
  const batch = Buffer.concat(Array.from({ length: recordsPerSync }, () => record));
  const syncs: number[] = [];
  let records = 0;
  const started = performance.now();
  while (performance.now() - started < durationMs) {
    const t = performance.now();
    await handle.write(batch);
    await handle.datasync();
    syncs.push(performance.now() - t);
    records += recordsPerSync;
  }
  const seconds = (performance.now() - started) / 1000;
  await handle.close();
  syncs.sort((a, b) => a - b);
  return {
    recordsPerSecond: records / seconds,
    syncMsP50: syncs[Math.floor(syncs.length / 2)] ?? 0,
  };
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'kmb-bench-'));
  const { child, address } = await startServer(join(dir, 'data'));
  const results: Result[] = [];
  try {
    const stream = await createBenchStream(address);
    for (const scenario of scenarios) results.push(await runScenario(address, scenario, stream));
  } finally {
    child.kill('SIGTERM');
    await new Promise((resolve) => child.once('exit', resolve));
  }
  const peer1 = await diskPeer(dir, 1);
  const peer100 = await diskPeer(dir, 100);
  await rm(dir, { recursive: true, force: true });
  const best = results.reduce((a, b) => (b.eventsPerSecond > a.eventsPerSecond ? b : a));
  print(results, peer1, peer100, best);
  if (args.has('--json')) {
    const digest = createHash('sha256')
      .update(JSON.stringify(results.map((r) => r.events)))
      .digest('hex');
    console.log(
      JSON.stringify({
        single_node: {
          events_per_s: Math.round(best.eventsPerSecond),
          p50_ms: best.p50Ms,
          p99_ms: best.p99Ms,
          p999_ms: best.p999Ms,
        },
        scenarios: results,
        disk_peer: {
          records_per_s_sync_each: Math.round(peer1.recordsPerSecond),
          records_per_s_sync_per_100: Math.round(peer100.recordsPerSecond),
          fdatasync_ms_p50: peer1.syncMsP50,
        },
        ratio_to_disk_peer: best.eventsPerSecond / peer100.recordsPerSecond,
        result_hash: digest.slice(0, 16),
      }),
    );
  }
}

function print(
  results: Result[],
  peer1: { recordsPerSecond: number; syncMsP50: number },
  peer100: { recordsPerSecond: number },
  best: Result,
): void {
  console.log(
    `kimberlite-ts benchmark: ${cpus().length} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}`,
  );
  console.log(
    `single node, fsync on, ${eventSizeBytes}-byte events, ${connectionCount} connections, ${durationMs} ms per scenario`,
  );
  console.log('scenario                              events/s      p50 ms   p99 ms   p999 ms');
  for (const r of results) {
    console.log(
      `${r.scenario.padEnd(36)} ${Math.round(r.eventsPerSecond).toString().padStart(9)} ` +
        `${r.p50Ms.toFixed(2).padStart(9)} ${r.p99Ms.toFixed(2).padStart(8)} ${r.p999Ms.toFixed(2).padStart(9)}`,
    );
  }
  console.log(
    `peer (same disk): write+fdatasync per record ${Math.round(peer1.recordsPerSecond)} records/s (fdatasync p50 ${peer1.syncMsP50.toFixed(2)} ms); per 100 records ${Math.round(peer100.recordsPerSecond)} records/s`,
  );
  console.log(
    `best kimberlite / disk peer (100 per sync): ${(best.eventsPerSecond / peer100.recordsPerSecond).toFixed(3)}`,
  );
}

await main();
