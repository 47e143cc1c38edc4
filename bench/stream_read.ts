// Reads of long streams through the SDK, from a cold start. A 3-replica cluster is given three
// streams of 100-byte events:
//   - "read", written one event per append by 16 sessions at once (so the leader batches a few
//     of its appends into each prepare);
//   - "serial", written one event per append by one session (one event per prepare: the layout
//     where a read pays most per event);
//   - "long", written mostly 1,000 events per append, then one event per append (16 sessions)
//     for its last events.
// The cluster is then stopped and started again on its data directories (every cache empty; the
// files may still be in the OS page cache), and one SDK client reads: the last 100 events of the
// long stream (the tail), the whole read stream page by page (Client.events), the whole serial
// stream, then the read stream and the tail again (warm). Reads are linearizable (the default),
// so each page passes the leader's read gate.
//
// It measures and prints; it never passes or fails on time (HOUSE_RULES §9).
//   node --import tsx bench/stream_read.ts [--quick | --small] [--json]
// Sizes (read / serial / long): full 100K / 5K / 1M; --quick 100K / 1K / 200K; --small (npm
// test) 2K / 100 / 10K. With --json the last line is one JSON object: stream_read_events_per_s
// (the cold read of the read stream), stream_read_tail_ms (the cold tail read), and the rest of
// what is printed.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from '../src/client/client.js';
import type { Client } from '../src/client/client.js';
import { asStreamId, asTenantId } from '../src/core/types.js';
import type { ClientId } from '../src/core/types.js';
import { encodeCommand } from '../src/kernel/kernel.js';
import { RawClient, newClientId } from '../src/testing/raw_client.js';
import { BenchCluster } from './cluster_process.js';
import { benchAudit } from './loader.js';

const argv = process.argv.slice(2);
const small = argv.includes('--small');
const quick = argv.includes('--quick');

/** Events of the stream read whole, written one per append. */
const readStreamEventCount = small ? 2_000 : 100_000;
/** Events of the stream written one per append by one session. */
const serialStreamEventCount = small ? 100 : quick ? 1_000 : 5_000;
/** Events of the stream whose tail is read. */
const longStreamEventCount = small ? 10_000 : quick ? 200_000 : 1_000_000;
/** The long stream's last events, written one per append (the tail read reads 100 of them). */
const longStreamTailEventCount = small ? 500 : 10_000;
/** Events per append of the rest of the long stream. */
const longStreamBulkEventsPerAppend = 1_000;
/** Sessions writing at once (each with one append in flight). */
const writerSessionCount = 16;
const writerConnectionCount = 4;
const eventSizeBytes = 100;
/** Events the tail read asks for. */
const tailEventCount = 100;
/** Warm tail reads after the cold one (their median is printed). */
const warmTailReadCount = small ? 5 : 20;

interface Target {
  readonly tenantId: number;
  readonly streamId: number;
}

/** Appends `eventCount` events to `target`, `eventsPerAppend` per command, over many sessions. */
async function fill(
  address: string,
  target: Target,
  eventCount: number,
  eventsPerAppend: number,
  sessionCount = writerSessionCount,
): Promise<void> {
  const clients = await Promise.all(
    Array.from({ length: writerConnectionCount }, () => RawClient.connect(address)),
  );
  try {
    const payload = new Uint8Array(eventSizeBytes).fill(0x61);
    const body = (count: number): Uint8Array =>
      encodeCommand({
        kind: 'append',
        tenantId: asTenantId(target.tenantId),
        streamId: asStreamId(target.streamId),
        expectedOffset: null,
        events: Array.from({ length: count }, () => payload),
        audit: benchAudit,
      });
    const full = body(eventsPerAppend);
    let left = eventCount;
    const session = async (client: RawClient): Promise<void> => {
      const id: ClientId = newClientId();
      let requestNumber = 0;
      await client.request(id, requestNumber++, null);
      while (left > 0) {
        const count = Math.min(left, eventsPerAppend);
        left -= count;
        const answer = await client.requestEncoded(
          id,
          requestNumber++,
          count === eventsPerAppend ? full : body(count),
        );
        if (answer.kind !== 'reply') throw new Error(`append: ${JSON.stringify(answer)}`);
      }
    };
    const sessions = Array.from({ length: sessionCount }, (_, i) =>
      session(clients[i % clients.length]!),
    );
    await Promise.all(sessions);
  } finally {
    for (const client of clients) client.close();
  }
}

interface Measured {
  readonly coldTailMs: number;
  readonly warmTailMsP50: number;
  readonly coldReadMs: number;
  readonly warmReadMs: number;
  readonly coldSerialMs: number;
  readonly readOpCount: number;
  readonly serialOpCount: number;
}

/** Reads the whole stream through the SDK; the time taken. */
async function readWhole(client: Client, target: Target, eventCount: number): Promise<number> {
  const started = performance.now();
  let count = 0;
  for await (const event of client.events(target)) {
    if (event.offset !== count) throw new Error(`offset ${event.offset}, expected ${count}`);
    count += 1;
  }
  if (count !== eventCount) throw new Error(`read ${count} events, expected ${eventCount}`);
  return performance.now() - started;
}

async function readTail(client: Client, target: Target): Promise<number> {
  const from = longStreamEventCount - tailEventCount;
  const started = performance.now();
  const read = await client.read({ ...target, from, limit: tailEventCount });
  const elapsed = performance.now() - started;
  if (read.events.length !== tailEventCount) throw new Error(`tail: ${read.events.length}`);
  return elapsed;
}

interface Targets {
  readonly read: Target;
  readonly serial: Target;
  readonly long: Target;
}

/** Creates the tenant and the three streams. */
async function createStreams(addresses: readonly string[]): Promise<Targets> {
  const setup = await connect({ addresses, actor: 'bench' });
  try {
    const { tenantId } = await setup.createTenant('bench');
    const target = async (name: string): Promise<Target> => {
      const { streamId } = await setup.createStream({ tenantId, name, dataClass: 'Public' });
      return { tenantId, streamId };
    };
    return {
      read: await target('read'),
      serial: await target('serial'),
      long: await target('long'),
    };
  } finally {
    await setup.close();
  }
}

/** Writes the streams; the ops the read and serial streams took. */
async function write(cluster: BenchCluster, leader: number, targets: Targets): Promise<number[]> {
  const address = cluster.addresses[leader] ?? '';
  const commit = async (): Promise<number> => (await cluster.status(leader))?.commitNumber ?? 0;
  const before = await commit();
  await fill(address, targets.read, readStreamEventCount, 1);
  const between = await commit();
  await fill(address, targets.serial, serialStreamEventCount, 1, 1);
  const after = await commit();
  const bulk = longStreamEventCount - longStreamTailEventCount;
  await fill(address, targets.long, bulk, longStreamBulkEventsPerAppend);
  await fill(address, targets.long, longStreamTailEventCount, 1);
  return [between - before, after - between];
}

async function measure(root: string): Promise<Measured> {
  const cluster = await BenchCluster.start(root, 3, { name: 'stream-read' });
  try {
    const { leader } = await cluster.waitForLeader();
    const targets = await createStreams(cluster.addresses);
    const [readOpCount, serialOpCount] = await write(cluster, leader, targets);
    await cluster.waitForConvergence();
    await cluster.stop();
    await Promise.all(cluster.addresses.map((_, id) => cluster.startNode(id)));
    await cluster.waitForLeader();
    const client = await connect({ addresses: cluster.addresses, actor: 'bench' });
    try {
      await client.listTenants(); // Finds the leader and opens the connection before timing.
      const coldTailMs = await readTail(client, targets.long);
      const coldReadMs = await readWhole(client, targets.read, readStreamEventCount);
      const coldSerialMs = await readWhole(client, targets.serial, serialStreamEventCount);
      const warmReadMs = await readWhole(client, targets.read, readStreamEventCount);
      const warm: number[] = [];
      for (let i = 0; i < warmTailReadCount; i++) warm.push(await readTail(client, targets.long));
      warm.sort((a, b) => a - b);
      const warmTailMsP50 = warm[Math.floor(warm.length / 2)] ?? NaN;
      return {
        coldTailMs,
        warmTailMsP50,
        coldReadMs,
        warmReadMs,
        coldSerialMs,
        readOpCount: readOpCount ?? 0,
        serialOpCount: serialOpCount ?? 0,
      };
    } finally {
      await client.close();
    }
  } finally {
    await cluster.stop();
  }
}

function round(value: number): number {
  return Math.round(value * 100) / 100;
}

const count = (n: number): string => n.toLocaleString('en-US');
const perSecond = (events: number, ms: number): number => Math.round((events * 1000) / ms);

function report(measured: Measured): void {
  const m = measured;
  console.log(
    `stream reads (3 replicas, fsync on, ${eventSizeBytes}-byte events, one SDK client, ` +
      'linearizable reads, after a restart of the cluster):',
  );
  const layout = (events: number, sessions: number, ops: number): string =>
    `${count(events)} events written one per append by ${sessions} session` +
    `${sessions === 1 ? '' : 's'}, in ${count(ops)} ops ` +
    `(${(events / Math.max(1, ops)).toFixed(1)} events per op)`;
  console.log(`  read stream: ${layout(readStreamEventCount, writerSessionCount, m.readOpCount)}`);
  const rate = (ms: number): string => `${count(perSecond(readStreamEventCount, ms))} events/s`;
  console.log(
    `    whole stream, cold: ${round(m.coldReadMs)} ms (${rate(m.coldReadMs)}); ` +
      `warm: ${round(m.warmReadMs)} ms (${rate(m.warmReadMs)})`,
  );
  console.log(`  serial stream: ${layout(serialStreamEventCount, 1, m.serialOpCount)}`);
  console.log(
    `    whole stream, cold: ${round(m.coldSerialMs)} ms ` +
      `(${count(perSecond(serialStreamEventCount, m.coldSerialMs))} events/s)`,
  );
  console.log(
    `  long stream: ${count(longStreamEventCount)} events (the last ` +
      `${count(longStreamTailEventCount)} one per append, the rest ` +
      `${count(longStreamBulkEventsPerAppend)} per append)`,
  );
  console.log(
    `    last ${tailEventCount} events, cold: ${round(m.coldTailMs)} ms; warm p50 of ` +
      `${warmTailReadCount}: ${round(m.warmTailMsP50)} ms`,
  );
  const json = {
    stream_read_events_per_s: perSecond(readStreamEventCount, m.coldReadMs),
    stream_read_tail_ms: round(m.coldTailMs),
    stream_read_warm_events_per_s: perSecond(readStreamEventCount, m.warmReadMs),
    stream_read_warm_tail_ms_p50: round(m.warmTailMsP50),
    stream_read_one_per_op_events_per_s: perSecond(serialStreamEventCount, m.coldSerialMs),
    stream_read_events: readStreamEventCount,
    stream_read_ops: m.readOpCount,
    stream_read_tail_stream_events: longStreamEventCount,
  };
  if (argv.includes('--json')) console.log(JSON.stringify(json));
}

async function main(): Promise<void> {
  const root = await mkdtemp(join(tmpdir(), 'kmb-stream-read-'));
  try {
    report(await measure(root));
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

await main();
