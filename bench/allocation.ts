// Heap allocation on the write path: how many bytes each replica allocates per request and per
// event, and what the collector spends on them. Allocation is what the garbage collector pays
// for later, in pauses on the event loop (docs/performance.md, "What an event still costs").
//
// Three replicas run with V8's --trace-gc-nvp, which prints, for every collection, the bytes
// allocated since the previous one and the pause. A closed-loop load (one-event requests from
// 256 sessions, then 100-event requests from 16) runs after a warm-up; the bytes allocated by
// each replica during the measured window are divided by the requests acknowledged in it. The
// marginal cost of one more event in a request is (bytes per 100-event request − bytes per
// 1-event request) / 99. Only the JavaScript heap is counted (Buffer contents live outside it).
//
// It measures and prints; it never passes or fails on a number (HOUSE_RULES §9).
//   node --import tsx bench/allocation.ts [--quick | --small] [--json]

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BenchCluster } from './cluster_process.js';
import { createBenchStream, runLoad } from './loader.js';

const argv = process.argv.slice(2);
const small = argv.includes('--small');
const quick = argv.includes('--quick');
const durationMs = small ? 500 : quick ? 2_000 : 5_000;
const warmUpMs = small ? 300 : 2_000;
const scenarios = [
  { name: 'one_event', sessions: small ? 16 : 256, eventsPerAppend: 1 },
  { name: 'hundred_events', sessions: 16, eventsPerAppend: 100 },
] as const;

/** What one replica's collector reported while a window was open. */
interface GcTally {
  allocatedBytes: number;
  pauseMs: number;
  scavenges: number;
  markCompacts: number;
}

const traceLine = / pause=([\d.]+) .*?\bgc=(\w+) .*?\ballocated=(\d+)/;

interface ReplicaRow {
  readonly replica: string;
  readonly bytes_per_request: number;
  readonly bytes_per_event: number;
  readonly gc_pause_ms_per_s: number;
  readonly scavenges: number;
  readonly mark_compacts: number;
}

interface ScenarioResult {
  readonly name: string;
  readonly events_per_append: number;
  readonly requests_per_s: number;
  readonly replicas: ReplicaRow[];
  readonly leader_bytes_per_request: number;
  /** The backups' mean. */
  readonly backup_bytes_per_request: number;
}

async function main(): Promise<void> {
  const root = await mkdtemp(join(tmpdir(), 'kmb-alloc-'));
  const tallies: GcTally[] = [0, 1, 2].map(() => ({
    allocatedBytes: 0,
    pauseMs: 0,
    scavenges: 0,
    markCompacts: 0,
  }));
  let counting = false;
  const onLine = (id: number, line: string): void => {
    if (!counting) return;
    const match = traceLine.exec(line);
    const tally = tallies[id];
    if (match === null || tally === undefined) return;
    tally.pauseMs += Number(match[1]);
    if (match[2] === 's') tally.scavenges += 1;
    else tally.markCompacts += 1;
    tally.allocatedBytes += Number(match[3]);
  };
  const cluster = await BenchCluster.start(join(root, 'kmb'), 3, {
    name: 'allocation',
    nodeArgs: ['--trace-gc-nvp'],
    onLine,
  });
  const results: ScenarioResult[] = [];
  try {
    const { leader } = await cluster.waitForLeader();
    const address = cluster.addresses[leader] ?? '';
    const stream = await createBenchStream(address);
    for (const scenario of scenarios) {
      const shape = { ...scenario, eventSizeBytes: 100, connectionCount: 4 };
      await runLoad(address, { ...shape, durationMs: warmUpMs }, stream);
      for (const tally of tallies) Object.assign(tally, zeroTally());
      counting = true;
      const run = await runLoad(address, { ...shape, durationMs }, stream);
      // The collection that ends the window reports the window's last allocations.
      await new Promise((resolve) => setTimeout(resolve, 200));
      counting = false;
      const requests = run.events / run.eventsPerAppend;
      const replicas = tallies.map((tally, id) => ({
        replica: id === leader ? `replica ${id} (leader)` : `replica ${id}`,
        bytes_per_request: Math.round(tally.allocatedBytes / requests),
        bytes_per_event: Math.round(tally.allocatedBytes / run.events),
        gc_pause_ms_per_s: Math.round((tally.pauseMs / run.seconds) * 10) / 10,
        scavenges: tally.scavenges,
        mark_compacts: tally.markCompacts,
      }));
      const backups = replicas.filter((_, id) => id !== leader);
      const backupMean = backups.reduce((sum, row) => sum + row.bytes_per_request, 0);
      results.push({
        name: scenario.name,
        events_per_append: scenario.eventsPerAppend,
        requests_per_s: Math.round(requests / run.seconds),
        replicas,
        leader_bytes_per_request: replicas[leader]?.bytes_per_request ?? 0,
        backup_bytes_per_request: Math.round(backupMean / Math.max(1, backups.length)),
      });
    }
  } finally {
    await cluster.stop();
    await rm(root, { recursive: true, force: true });
  }

  console.log('\nHeap allocation per request, 3 replicas, 100-byte events (--trace-gc-nvp)');
  for (const result of results) {
    console.log(
      `\n${result.events_per_append} event(s) per request, ${result.requests_per_s} requests/s`,
    );
    console.log('replica              bytes/request  bytes/event  GC pause ms/s  scav  mark');
    for (const row of result.replicas) {
      console.log(
        `${row.replica.padEnd(20)} ${String(row.bytes_per_request).padStart(13)} ` +
          `${String(row.bytes_per_event).padStart(12)} ${String(row.gc_pause_ms_per_s).padStart(14)} ` +
          `${String(row.scavenges).padStart(5)} ${String(row.mark_compacts).padStart(5)}`,
      );
    }
  }
  const [one, hundred] = results;
  const extra = (pick: (result: ScenarioResult) => number): number =>
    one === undefined || hundred === undefined ? 0 : Math.round((pick(hundred) - pick(one)) / 99);
  const leaderPerEvent = extra((result) => result.leader_bytes_per_request);
  const backupPerEvent = extra((result) => result.backup_bytes_per_request);
  console.log(
    `\nEach extra event in a request: leader ${leaderPerEvent} bytes, each backup ` +
      `${backupPerEvent} bytes (the rest is per request).`,
  );
  if (argv.includes('--json')) {
    console.log(
      JSON.stringify({
        allocation_by_scenario: results,
        alloc_leader_bytes_per_request: one?.leader_bytes_per_request ?? null,
        alloc_backup_bytes_per_request: one?.backup_bytes_per_request ?? null,
        alloc_leader_bytes_per_extra_event: leaderPerEvent,
        alloc_backup_bytes_per_extra_event: backupPerEvent,
      }),
    );
  }
}

function zeroTally(): GcTally {
  return { allocatedBytes: 0, pauseMs: 0, scavenges: 0, markCompacts: 0 };
}

await main();
