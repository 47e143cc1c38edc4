// The timeline of one request in flight (issue 16): where the time of a single write goes, from
// the SDK's call to its resolution, on the leader, on the backups and in the SDK.
//
// It starts 3 replicas (and, for comparison, 1) with KMB_TIMELINE set, so each server records
// when each step of a write happened (src/node/timeline.ts), then appends one 100-byte event at a
// time through the SDK, marking the call and its resolution here. After a graceful stop every
// server has written its marks; the marks of each request are the ones between its call and its
// resolution (one request is in flight at a time), on one clock (every process on the machine
// reads the same wall clock at microsecond resolution). It prints, per interval of a write's
// path, the median and p90, and the median among the slowest 2% of requests (where the tail
// goes), and the JSON (last line with --json) has
// `timeline_cluster3` and `timeline_single` ({step: {p50_ms, p90_ms, slowest_p50_ms}}), each
// run's end-to-end `p50_ms` / `p99_ms`, and how often the leader's own fdatasync was the copy
// that completed the quorum (`leader_fsync_completed_quorum_share`).
//
// Flags: --quick / --small (fewer requests), --json.

import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from '../src/client/client.js';
import { BenchCluster } from './cluster_process.js';
import { createBenchStream } from './loader.js';

const argv = process.argv.slice(2);
const small = argv.includes('--small');
const quick = argv.includes('--quick');
const requestCount = small ? 50 : quick ? 1000 : 3000;
// Unmeasured requests first: JIT warm-up, and the journal laying its first free space down.
const warmupCount = small ? 10 : quick ? 1000 : 3000;

interface Mark {
  readonly atMs: number;
  readonly name: string;
  readonly op: number;
  readonly peer: number;
}

interface Call {
  readonly startMs: number;
  readonly endMs: number;
}

function wallMs(): number {
  return performance.timeOrigin + performance.now();
}

async function runCalls(addresses: readonly string[]): Promise<Call[]> {
  const leaderAddress = addresses[0] ?? '';
  const [tenantId, streamId] = await createBenchStream(leaderAddress);
  const client = await connect({ addresses, actor: 'bench' });
  const event = 'x'.repeat(100);
  const calls: Call[] = [];
  try {
    for (let i = 0; i < warmupCount + requestCount; i++) {
      const startMs = wallMs();
      await client.append({ tenantId, streamId, events: [event] }, { reason: 'timeline' });
      const endMs = wallMs();
      if (i >= warmupCount) calls.push({ startMs, endMs });
    }
  } finally {
    await client.close();
  }
  return calls;
}

async function readMarks(prefix: string, nodeCount: number): Promise<Mark[][]> {
  const all: Mark[][] = [];
  for (let node = 0; node < nodeCount; node++) {
    const text = await readFile(`${prefix}-${node}.json`, 'utf8');
    const parsed = JSON.parse(text) as { marks: Mark[]; droppedCount: number };
    if (parsed.droppedCount > 0) throw new Error(`node ${node} dropped timeline marks`);
    all.push(parsed.marks);
  }
  return all;
}

/** The first mark named `name` (from `peer`, when given) on `node` within the call. */
function first(
  marks: readonly Mark[][],
  call: Call,
  node: number,
  name: string,
  peer = -1,
): number | null {
  for (const m of marks[node] ?? []) {
    if (m.atMs < call.startMs || m.atMs > call.endMs) continue;
    if (m.name === name && (peer < 0 || m.peer === peer)) return m.atMs;
  }
  return null;
}

/**
 * The intervals of one call, in the order a write takes them. With backups, the backup whose
 * prepare_ok reached the leader first is the one that completed the quorum; its path is shown.
 * Null when a mark is missing (a request retried, say): such calls are left out.
 */
function intervalsOf(call: Call, marks: readonly Mark[][], leader: number): Intervals | null {
  const at = (node: number, name: string, peer = -1): number | null =>
    first(marks, call, node, name, peer);
  const requestIn = at(leader, 'request_in');
  const appendStart = at(leader, 'append_start');
  const appendDurable = at(leader, 'append_durable');
  const replyOut = at(leader, 'reply_out');
  if (requestIn === null || appendStart === null || appendDurable === null || replyOut === null) {
    return null;
  }
  const rows: [string, number][] = [
    ['SDK call → leader has the request (SDK, wire, decode)', requestIn - call.startMs],
    ['leader: admission and replica, until its write starts', appendStart - requestIn],
  ];
  let quorumAt = appendDurable;
  let leaderCompleted = true;
  if (marks.length > 1) {
    let q = -1;
    let okIn = Infinity;
    for (let b = 0; b < marks.length; b++) {
      if (b === leader) continue;
      const t = at(leader, 'prepare_ok_in', b);
      if (t !== null && t < okIn) [q, okIn] = [b, t];
    }
    const sent = at(leader, 'send_prepare', q);
    const prepareIn = at(q, 'prepare_in');
    const bStart = at(q, 'append_start');
    const bDurable = at(q, 'append_durable');
    const okOut = at(q, 'send_prepare_ok');
    if (q < 0 || sent === null || prepareIn === null || bStart === null) return null;
    if (bDurable === null || okOut === null) return null;
    rows.push(
      ['leader: write started → prepare sent', sent - appendStart],
      ['wire: prepare leader → backup (send to decoded)', prepareIn - sent],
      ['backup: decoded → its write starts', bStart - prepareIn],
      ['backup: write + fdatasync', bDurable - bStart],
      ['backup: durable → prepare_ok sent', okOut - bDurable],
      ['wire: prepare_ok backup → leader', okIn - okOut],
    );
    // The quorum was reached when the quorum-th durable copy was known at the leader: its own
    // write, or a backup's prepare_ok (the primary need not wait for its own copy).
    const copies = [appendDurable];
    for (let b = 0; b < marks.length; b++) {
      const t = b === leader ? null : at(leader, 'prepare_ok_in', b);
      if (t !== null) copies.push(t);
    }
    copies.sort((x, y) => x - y);
    const quorum = Math.floor(marks.length / 2) + 1;
    quorumAt = copies[quorum - 1] ?? Infinity;
    if (quorumAt === Infinity) return null;
    leaderCompleted = quorumAt === appendDurable;
  }
  rows.push(
    ['leader: write + fdatasync', appendDurable - appendStart],
    ['leader: quorum durable → reply sent', replyOut - quorumAt],
    ['reply sent → SDK call resolved (wire, decode, SDK)', call.endMs - replyOut],
  );
  return { rows, leaderCompleted };
}

interface Intervals {
  readonly rows: readonly [string, number][];
  /** Whether the leader's own write was the copy that completed the quorum. */
  readonly leaderCompleted: boolean;
}

function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
}

/** Per interval: its median and p90, and its median among the slowest 2% of requests. */
type StepTable = Record<string, { p50_ms: number; p90_ms: number; slowest_p50_ms: number }>;

/** The share of requests (the slowest by end-to-end time) whose intervals explain the tail. */
const slowestShare = 0.02;

/** Per interval, its median and p90 over the calls whose marks were all found. */
function table(
  calls: readonly Call[],
  marks: readonly Mark[][],
  leader: number,
): { steps: StepTable; counted: number; leaderCompletedShare: number } {
  const all = calls.flatMap((call) => {
    const found = intervalsOf(call, marks, leader);
    return found === null ? [] : [{ ...found, totalMs: call.endMs - call.startMs }];
  });
  const slowest = [...all]
    .sort((a, b) => b.totalMs - a.totalMs)
    .slice(0, Math.max(1, Math.ceil(all.length * slowestShare)));
  const steps: StepTable = {};
  const labels = all[0]?.rows.map(([label]) => label) ?? [];
  labels.forEach((label, i) => {
    const values = all.map((x) => x.rows[i]?.[1] ?? 0).sort((a, b) => a - b);
    const tail = slowest.map((x) => x.rows[i]?.[1] ?? 0).sort((a, b) => a - b);
    steps[label] = {
      p50_ms: round(quantile(values, 0.5)),
      p90_ms: round(quantile(values, 0.9)),
      slowest_p50_ms: round(quantile(tail, 0.5)),
    };
  });
  const leaderCompletedShare =
    all.length === 0 ? 0 : all.filter((x) => x.leaderCompleted).length / all.length;
  return { steps, counted: all.length, leaderCompletedShare: round(leaderCompletedShare) };
}

function round(value: number): number {
  return Math.round(value * 1000) / 1000;
}

function latency(calls: readonly Call[]): { p50_ms: number; p99_ms: number } {
  const sorted = calls.map((c) => c.endMs - c.startMs).sort((a, b) => a - b);
  return { p50_ms: round(quantile(sorted, 0.5)), p99_ms: round(quantile(sorted, 0.99)) };
}

interface Measured {
  readonly steps: StepTable;
  readonly e2e: { p50_ms: number; p99_ms: number };
  readonly requests: number;
  readonly counted: number;
  readonly leaderCompletedShare: number;
}

async function measure(root: string, replicaCount: number): Promise<Measured> {
  const prefix = join(root, `timeline-${replicaCount}`);
  const cluster = await BenchCluster.start(join(root, `kmb-${replicaCount}`), replicaCount, {
    name: 'timeline',
    env: { KMB_TIMELINE: prefix },
  });
  let calls: Call[];
  let leader: number;
  try {
    leader = (await cluster.waitForLeader()).leader;
    const addresses = cluster.addresses;
    // The SDK finds the leader itself; the bench stream is created at the leader.
    const ordered = [addresses[leader] ?? '', ...addresses.filter((_, i) => i !== leader)];
    calls = await runCalls(ordered);
  } finally {
    await cluster.stop();
  }
  const marks = await readMarks(prefix, replicaCount);
  const { steps, counted, leaderCompletedShare } = table(calls, marks, leader);
  return { steps, e2e: latency(calls), requests: calls.length, counted, leaderCompletedShare };
}

function print(title: string, result: Measured): void {
  const { e2e, steps, requests, counted } = result;
  console.log(`${title}: ${requests} requests, end to end p50 ${e2e.p50_ms} ms, p99 ${e2e.p99_ms}`);
  console.log(`  intervals of the ${counted} requests whose every mark was found:`);
  console.log(`  ${'interval'.padEnd(58)}   p50 ms   p90 ms  slowest ${slowestShare * 100}%`);
  for (const [label, row] of Object.entries(steps)) {
    const p50 = row.p50_ms.toFixed(3).padStart(8);
    const p90 = row.p90_ms.toFixed(3).padStart(8);
    console.log(
      `  ${label.padEnd(58)} ${p50} ${p90} ${row.slowest_p50_ms.toFixed(3).padStart(10)}`,
    );
  }
  if (title.startsWith('3')) {
    const share = Math.round(result.leaderCompletedShare * 100);
    console.log(`  the leader's own fdatasync completed the quorum in ${share}% of them`);
  }
}

async function main(): Promise<void> {
  const root = await mkdtemp(join(tmpdir(), 'kmb-timeline-'));
  try {
    const single = await measure(root, 1);
    const cluster3 = await measure(root, 3);
    print('1 replica, one request in flight through the SDK', single);
    print('3 replicas, one request in flight through the SDK', cluster3);
    if (argv.includes('--json')) {
      console.log(
        JSON.stringify({
          timeline_single: { ...single.e2e, steps: single.steps },
          timeline_cluster3: {
            ...cluster3.e2e,
            steps: cluster3.steps,
            leader_fsync_completed_quorum_share: cluster3.leaderCompletedShare,
          },
        }),
      );
    }
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

await main();
