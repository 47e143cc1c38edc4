// Three replicas side by side with a peer: our 3-replica cluster and a 3-member etcd cluster,
// both on loopback on this machine in this run, fsync on, 100-byte writes (events for us, puts
// of 100-byte values for etcd), one request in flight per session/connection, at 1, 16, 256 and
// 1024 concurrent requests. Then, for our cluster, the latency at half of its peak throughput
// (open loop, measured from each request's scheduled time). It prints both tables, the ratio of
// the peaks, and how much CPU each load generator used next to the servers it drove. Last, the
// way an application would write: one SDK client with coalesceAppends, 1 to 4096 concurrent
// callers each appending one event and awaiting it, and that path's latency at half its peak.
//
// It measures and prints; it never passes or fails on time (HOUSE_RULES §9).
//   node --import tsx bench/compare.ts [--quick | --small] [--json]
// With --json the last line is one JSON object: cluster3 and etcd3 (each {events_per_s, p50_ms,
// p99_ms, p999_ms} at its peak), cluster3_half_peak, cluster3_vs_etcd3, cluster3_sdk_coalesced
// (and _half_peak, _by_concurrency), one request in flight (cluster3_conc1, etcd3_conc1: {p50_ms,
// p99_ms}, and cluster3_conc1_vs_etcd3, the ratio of their p50s), and the full tables.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BenchCluster, readSchedule } from './cluster_process.js';
import type { CpuSchedule } from './cluster_process.js';
import { EtcdCluster, etcdAvailable } from './etcd_peer.js';
import type { PeerRun } from './etcd_peer.js';
import { createBenchStream, runLoad, runPacedLoad, runPacedSdkLoad, runSdkLoad } from './loader.js';
import type { LoadResult } from './loader.js';

const argv = process.argv.slice(2);
const small = argv.includes('--small');
const quick = argv.includes('--quick');
const durationMs = small ? 500 : quick ? 2_000 : 5_000;
const concurrencies = small ? [16] : [1, 16, 256, 1024];
/** Concurrent one-event append calls through one SDK client that coalesces them. */
const coalescedConcurrencies = small ? [64] : [1, 16, 256, 1024, 4096];
const coalescedPipelineMax = 4;
const eventSizeBytes = 100;
const connectionCount = 4;

interface Summary {
  readonly events_per_s: number;
  readonly p50_ms: number;
  readonly p99_ms: number;
  readonly p999_ms: number;
  readonly concurrency: number;
}

function summary(run: LoadResult | PeerRun): Summary {
  const perSecond = 'eventsPerSecond' in run ? run.eventsPerSecond : run.perSecond;
  const concurrency = 'sessions' in run ? run.sessions : run.concurrency;
  return {
    events_per_s: Math.round(perSecond),
    p50_ms: round(run.p50Ms),
    p99_ms: round(run.p99Ms),
    p999_ms: round(run.p999Ms),
    concurrency,
  };
}

function round(value: number): number {
  return Math.round(value * 100) / 100;
}

function peak<T extends Summary>(rows: readonly T[]): T {
  return rows.reduce((a, b) => (b.events_per_s > a.events_per_s ? b : a));
}

interface Ours {
  readonly rows: Summary[];
  readonly half: Summary;
  readonly sdk: Summary;
  readonly cpu: string;
  readonly coalesced: Coalesced;
  /** At half of peak: each replica's and the loader's CPU time and run-queue wait. */
  readonly cpuWait: CpuWait[] | null;
}

interface CpuWait {
  readonly process: string;
  readonly run_ms_per_s: number;
  readonly wait_ms_per_s: number;
}

/**
 * How long each process ran and how long it waited, runnable, for a CPU, per second of the run
 * (replicas in order, then this process, the load generator); null without schedstat.
 */
function cpuWaitOf(
  before: ReadonlyArray<CpuSchedule | null>,
  after: ReadonlyArray<CpuSchedule | null>,
  seconds: number,
): CpuWait[] | null {
  const rows: CpuWait[] = [];
  for (const [index, end] of after.entries()) {
    const start = before[index];
    if (start === null || start === undefined || end === null) return null;
    rows.push({
      process: index === after.length - 1 ? 'loader' : `replica ${index}`,
      run_ms_per_s: Math.round((end.runMs - start.runMs) / seconds),
      wait_ms_per_s: Math.round((end.waitMs - start.waitMs) / seconds),
    });
  }
  return rows;
}

interface Coalesced {
  readonly rows: Summary[];
  readonly half: Summary;
  readonly cpu: string;
}

/**
 * One SDK client with coalesceAppends and pipelineMax 4: `concurrency` callers each append one
 * 100-byte event and await it, again and again; then an open-loop run at half the best rate.
 */
async function measureCoalesced(
  addresses: readonly string[],
  stream: [number, number],
): Promise<Coalesced> {
  const rows: Summary[] = [];
  const cpu: string[] = [];
  const shape = { pipelineMax: coalescedPipelineMax, coalesceAppends: true, eventSizeBytes };
  for (const concurrency of coalescedConcurrencies) {
    const result = await runSdkLoad(addresses, { ...shape, concurrency, durationMs }, stream);
    rows.push(summary(result));
    cpu.push(`${concurrency}: ${result.loaderCpuSeconds.toFixed(2)} s`);
  }
  const top = peak(rows);
  const rate = Math.max(1, Math.round(top.events_per_s / 2));
  const pacedSpec = { ...shape, concurrency: top.concurrency, durationMs, eventsPerSecond: rate };
  const half = summary(await runPacedSdkLoad(addresses, pacedSpec, stream));
  return { rows, half: { ...half, concurrency: top.concurrency }, cpu: cpu.join(', ') };
}

async function measureOurs(root: string): Promise<Ours> {
  const cluster = await BenchCluster.start(join(root, 'kmb'), 3, { name: 'compare' });
  try {
    const { leader } = await cluster.waitForLeader();
    const address = cluster.addresses[leader] ?? '';
    const stream = await createBenchStream(address);
    const rows: Summary[] = [];
    const cpu: string[] = [];
    for (const sessions of concurrencies) {
      const spec = { sessions, eventsPerAppend: 1, durationMs, eventSizeBytes, connectionCount };
      const result = await runLoad(address, spec, stream);
      rows.push(summary(result));
      cpu.push(`${sessions}: ${result.loaderCpuSeconds.toFixed(2)} s`);
    }
    const top = peak(rows);
    const rate = Math.max(1, Math.round(top.events_per_s / 2));
    // As many sessions as the peak had, so a session's one-in-flight rule never caps the
    // offered rate (with fewer, a slow reply would hold back that session's next send).
    const pacedSpec = { sessions: top.concurrency, eventsPerAppend: 1, durationMs, eventSizeBytes };
    const scheduleBefore = [...cluster.schedule(), readSchedule('self')];
    const pacedStarted = performance.now();
    const paced = await runPacedLoad(
      address,
      { ...pacedSpec, connectionCount, eventsPerSecond: rate },
      stream,
    );
    const pacedSeconds = (performance.now() - pacedStarted) / 1000;
    const scheduleAfter = [...cluster.schedule(), readSchedule('self')];
    const cpuWait = cpuWaitOf(scheduleBefore, scheduleAfter, pacedSeconds);
    const sdkShape = small
      ? { concurrency: 64, pipelineMax: 16 }
      : { concurrency: 1024, pipelineMax: 256 };
    const sdkSpec = { ...sdkShape, durationMs, eventSizeBytes };
    const sdk = summary(await runSdkLoad(cluster.addresses, sdkSpec, stream));
    const coalesced = await measureCoalesced(cluster.addresses, stream);
    return { rows, half: summary(paced), sdk, cpu: cpu.join(', '), coalesced, cpuWait };
  } finally {
    await cluster.stop();
  }
}

async function measureEtcd(root: string): Promise<{ rows: Summary[]; cpu: string } | string> {
  const missing = etcdAvailable();
  if (missing !== null) return missing;
  const etcd = await EtcdCluster.start(join(root, 'etcd'));
  try {
    const rows: Summary[] = [];
    const cpu: string[] = [];
    for (const concurrency of concurrencies) {
      const run = await etcd.run(concurrency, Math.max(1, Math.round(durationMs / 1000)));
      if (run.errors > 0) throw new Error(`etcd answered ${run.errors} errors`);
      rows.push(summary(run));
      cpu.push(
        `${concurrency}: wrk ${run.loaderCpuSeconds.toFixed(2)} s vs etcd ` +
          `${run.serverCpuSeconds.toFixed(2)} s`,
      );
    }
    return { rows, cpu: cpu.join(', ') };
  } finally {
    await etcd.stop();
  }
}

function table(title: string, rows: readonly Summary[]): void {
  console.log(title);
  console.log('  concurrent   events/s     p50 ms     p99 ms    p999 ms');
  for (const row of rows) {
    console.log(
      `  ${String(row.concurrency).padStart(10)} ${String(row.events_per_s).padStart(10)} ` +
        `${row.p50_ms.toFixed(2).padStart(10)} ${row.p99_ms.toFixed(2).padStart(10)} ` +
        `${row.p999_ms.toFixed(2).padStart(10)}`,
    );
  }
}

async function main(): Promise<void> {
  const root = await mkdtemp(join(tmpdir(), 'kmb-compare-'));
  try {
    const ours = await measureOurs(root);
    const etcd = await measureEtcd(root);
    table('kimberlite-ts, 3 replicas on loopback, fsync on, 1 event (100 B) per append', ours.rows);
    console.log(`  loader CPU (our Node load generator): ${ours.cpu}`);
    const half = ours.half;
    console.log(
      `  at half of peak (${half.events_per_s} events/s offered open-loop): p50 ${half.p50_ms} ` +
        `ms, p99 ${half.p99_ms} ms, p999 ${half.p999_ms} ms`,
    );
    if (ours.cpuWait !== null) {
      const parts = ours.cpuWait.map((w) => `${w.process} ${w.run_ms_per_s}/${w.wait_ms_per_s}`);
      console.log(`  there, ms per s on a CPU / waiting for one: ${parts.join(', ')}`);
    }
    const sdk = ours.sdk;
    const sdkLabel = small ? '16, 64 calls outstanding' : '256, 1024 calls outstanding';
    console.log(
      `  through the SDK (one client, pipelineMax ${sdkLabel}): ` +
        `${sdk.events_per_s} events/s, p50 ${sdk.p50_ms} ms, p99 ${sdk.p99_ms} ms`,
    );
    const coalesced = ours.coalesced;
    table(
      `kimberlite-ts, 3 replicas, through one SDK client with coalesceAppends (pipelineMax ` +
        `${coalescedPipelineMax}): concurrent calls, each appending 1 event (100 B) and awaiting it`,
      coalesced.rows,
    );
    console.log(`  loader CPU (SDK and callers): ${coalesced.cpu}`);
    console.log(
      `  at half of peak (${coalesced.half.events_per_s} calls/s offered open-loop): p50 ` +
        `${coalesced.half.p50_ms} ms, p99 ${coalesced.half.p99_ms} ms, p999 ` +
        `${coalesced.half.p999_ms} ms`,
    );
    const json: Record<string, unknown> = {
      cluster3_sdk_coalesced: peak(coalesced.rows),
      cluster3_sdk_coalesced_by_concurrency: coalesced.rows,
      cluster3_sdk_coalesced_half_peak: coalesced.half,
      cluster3_sdk_pipelined: sdk,
      cluster3: peak(ours.rows),
      cluster3_by_concurrency: ours.rows,
      cluster3_half_peak: half,
      cluster3_half_peak_cpu_wait: ours.cpuWait,
    };
    const conc1 = ours.rows.find((row) => row.concurrency === 1);
    if (conc1 !== undefined)
      json['cluster3_conc1'] = { p50_ms: conc1.p50_ms, p99_ms: conc1.p99_ms };
    if (typeof etcd === 'string') {
      console.log(`etcd peer skipped: ${etcd}`);
    } else {
      table('etcd 3.4, 3 members on loopback, fsync on, put of a 100-byte value', etcd.rows);
      console.log(`  load generator vs server CPU: ${etcd.cpu}`);
      const ratio = peak(ours.rows).events_per_s / peak(etcd.rows).events_per_s;
      console.log(`peak throughput, ours / etcd: ${ratio.toFixed(2)}`);
      json['etcd3'] = peak(etcd.rows);
      json['etcd3_by_concurrency'] = etcd.rows;
      json['cluster3_vs_etcd3'] = round(ratio);
      const etcdConc1 = etcd.rows.find((row) => row.concurrency === 1);
      if (etcdConc1 !== undefined) {
        json['etcd3_conc1'] = { p50_ms: etcdConc1.p50_ms, p99_ms: etcdConc1.p99_ms };
        if (conc1 !== undefined) {
          const p50Ratio = conc1.p50_ms / etcdConc1.p50_ms;
          console.log(`one request in flight, p50 ours / etcd: ${p50Ratio.toFixed(2)}`);
          json['cluster3_conc1_vs_etcd3'] = round(p50Ratio);
        }
      }
    }
    if (argv.includes('--json')) console.log(JSON.stringify(json));
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

await main();
