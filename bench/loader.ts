// The closed-loop load generator the throughput benchmarks share: `sessions` client sessions
// multiplexed over a few TCP connections to one server address, each with exactly one append in
// flight (the protocol's exactly-once rule), for `durationMs`. Every request's latency is
// recorded from send to reply; the loader's own CPU time is measured so a report can show
// whether the generator, not the server, was the limit.

import { connect } from '../src/client/client.js';
import type { Client } from '../src/client/client.js';
import { asStreamId, asTenantId } from '../src/core/types.js';
import type { ClientId } from '../src/core/types.js';
import { encodeCommand } from '../src/kernel/kernel.js';
import { RawClient, newClientId } from '../src/testing/raw_client.js';

export interface LoadSpec {
  readonly sessions: number;
  readonly eventsPerAppend: number;
  readonly durationMs: number;
  readonly eventSizeBytes: number;
  readonly connectionCount: number;
}

export interface LoadResult {
  readonly sessions: number;
  readonly eventsPerAppend: number;
  readonly events: number;
  readonly seconds: number;
  readonly eventsPerSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly p999Ms: number;
  /** CPU seconds this (loader) process used during the run. */
  readonly loaderCpuSeconds: number;
}

export const benchAudit = { actor: 'bench', reason: 'benchmark', correlationId: null };

export function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return 0;
  const index = Math.min(sorted.length - 1, Math.floor(p * sorted.length));
  return sorted[index] ?? 0;
}

/** Creates tenant "bench" and stream "events" (ids 1 and 1 on a fresh cluster). */
export async function createBenchStream(address: string): Promise<[number, number]> {
  const setup = await RawClient.connect(address);
  const admin = newClientId();
  await setup.request(admin, 0, null);
  const tenant = await setup.request(admin, 1, {
    kind: 'create_tenant',
    name: 'bench',
    audit: benchAudit,
  });
  if (tenant.kind !== 'reply') throw new Error(`create_tenant: ${JSON.stringify(tenant)}`);
  const stream = await setup.request(admin, 2, {
    kind: 'create_stream',
    tenantId: asTenantId(1),
    name: 'events',
    dataClass: 'Public',
    audit: benchAudit,
  });
  if (stream.kind !== 'reply') throw new Error(`create_stream: ${JSON.stringify(stream)}`);
  setup.close();
  return [1, 1];
}

interface BenchSession {
  readonly id: ClientId;
  readonly client: RawClient;
  requestNumber: number;
}

/** `count` registered sessions spread over `connectionCount` connections to `address`. */
async function openSessions(
  address: string,
  count: number,
  connectionCount: number,
): Promise<{ sessions: BenchSession[]; close: () => void }> {
  const clients = await Promise.all(
    Array.from({ length: connectionCount }, () => RawClient.connect(address)),
  );
  const sessions = Array.from({ length: count }, (_, i) => ({
    id: newClientId(),
    client: clients[i % connectionCount]!,
    requestNumber: 0,
  }));
  await Promise.all(sessions.map((s) => s.client.request(s.id, s.requestNumber++, null)));
  return { sessions, close: () => clients.forEach((client) => client.close()) };
}

/** The append command every request of a load sends, encoded once (the loader must be cheap). */
function appendBody(tenantStream: readonly [number, number], spec: LoadSpec): Uint8Array {
  const payload = new Uint8Array(spec.eventSizeBytes).fill(0x61);
  return encodeCommand({
    kind: 'append',
    tenantId: asTenantId(tenantStream[0]),
    streamId: asStreamId(tenantStream[1]),
    expectedOffset: null,
    events: Array.from({ length: spec.eventsPerAppend }, () => payload),
    audit: benchAudit,
  });
}

async function sendAppend(session: BenchSession, body: Uint8Array): Promise<void> {
  const answer = await session.client.requestEncoded(session.id, session.requestNumber++, body);
  if (answer.kind !== 'reply') throw new Error(`append failed: ${JSON.stringify(answer)}`);
}

/** A run's result from its latencies (ms), its length and the loader's CPU use. */
function resultOf(
  spec: { readonly sessions: number; readonly eventsPerAppend: number },
  latencies: readonly number[],
  seconds: number,
  cpu: NodeJS.CpuUsage,
): LoadResult {
  const sorted = Float64Array.from(latencies).sort();
  const events = latencies.length * spec.eventsPerAppend;
  return {
    sessions: spec.sessions,
    eventsPerAppend: spec.eventsPerAppend,
    events,
    seconds,
    eventsPerSecond: events / seconds,
    p50Ms: percentile(sorted, 0.5),
    p99Ms: percentile(sorted, 0.99),
    p999Ms: percentile(sorted, 0.999),
    loaderCpuSeconds: (cpu.user + cpu.system) / 1e6,
  };
}

/** Runs one closed-loop load against `address`, appending to stream `tenantStream`. */
export async function runLoad(
  address: string,
  spec: LoadSpec,
  tenantStream: readonly [number, number],
): Promise<LoadResult> {
  const { sessions, close } = await openSessions(address, spec.sessions, spec.connectionCount);
  const body = appendBody(tenantStream, spec);
  const latencies: number[] = [];
  const cpuBefore = process.cpuUsage();
  const started = performance.now();
  const deadline = started + spec.durationMs;
  await Promise.all(
    sessions.map(async (session) => {
      while (performance.now() < deadline) {
        const sent = performance.now();
        await sendAppend(session, body);
        latencies.push(performance.now() - sent);
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpuBefore);
  close();
  return resultOf(spec, latencies, seconds, cpu);
}

/**
 * Open-loop load at a fixed rate: `eventsPerSecond` single-event appends per second, the k-th
 * due at start + k / rate and given to session k mod `sessions` (so each session sends on its
 * own even schedule). A session still waiting for its previous answer sends the overdue request
 * as soon as that answer arrives. Latency is measured from each request's scheduled time, not
 * from when it was sent, so a stall is charged to every request it delays (no coordinated
 * omission). One timer drives the schedule, so the generator's own cost stays small next to the
 * servers' (a timer per request made the generator itself the source of tail latency).
 */
export async function runPacedLoad(
  address: string,
  spec: LoadSpec & { readonly eventsPerSecond: number },
  tenantStream: readonly [number, number],
): Promise<LoadResult> {
  const { sessions, close } = await openSessions(address, spec.sessions, spec.connectionCount);
  const body = appendBody(tenantStream, { ...spec, eventsPerAppend: 1 });
  const intervalMs = 1000 / spec.eventsPerSecond;
  const total = Math.floor(spec.durationMs / intervalMs);
  const latencies: number[] = [];
  const paced = sessions.map((session) => ({ session, busy: false, overdue: [] as number[] }));
  let answered = 0;
  let failure: unknown = null;
  let drained: () => void = () => undefined;
  const send = (slot: (typeof paced)[number], scheduled: number): void => {
    slot.busy = true;
    sendAppend(slot.session, body).then(
      () => {
        latencies.push(performance.now() - scheduled);
        answered += 1;
        const next = slot.overdue.shift();
        if (next !== undefined) send(slot, next);
        else slot.busy = false;
        if (answered === total) drained();
      },
      (error: unknown) => {
        failure ??= error;
        drained();
      },
    );
  };
  const cpuBefore = process.cpuUsage();
  const started = performance.now();
  const done = new Promise<void>((resolve) => (drained = resolve));
  for (let k = 0; k < total && failure === null;) {
    const due = Math.min(total, Math.floor((performance.now() - started) / intervalMs) + 1);
    for (; k < due; k++) {
      const slot = paced[k % paced.length]!;
      const scheduled = started + k * intervalMs;
      if (slot.busy) slot.overdue.push(scheduled);
      else send(slot, scheduled);
    }
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  if (total > 0) await done;
  if (failure !== null) throw failure;
  const seconds = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpuBefore);
  close();
  return resultOf({ ...spec, eventsPerAppend: 1 }, latencies, seconds, cpu);
}

export interface SdkLoadSpec {
  readonly concurrency: number;
  readonly pipelineMax: number;
  readonly durationMs: number;
  readonly eventSizeBytes: number;
  /** Let the SDK merge concurrent appends into shared commands (ConnectOptions). */
  readonly coalesceAppends?: boolean;
}

/** An SDK client for a load, its target stream and the one event it appends (registered). */
async function sdkClient(
  addresses: readonly string[],
  spec: SdkLoadSpec,
  tenantStream: readonly [number, number],
): Promise<{
  client: Client;
  target: { tenantId: number; streamId: number };
  events: Uint8Array[];
}> {
  const client = await connect({
    addresses,
    pipelineMax: spec.pipelineMax,
    coalesceAppends: spec.coalesceAppends ?? false,
    actor: 'bench',
  });
  const target = { tenantId: tenantStream[0], streamId: tenantStream[1] };
  const events = [new Uint8Array(spec.eventSizeBytes).fill(0x61)];
  await client.append({ ...target, events }); // Registers the first session.
  return { client, target, events };
}

/**
 * The same closed loop through the SDK: one Client with `pipelineMax` sessions over one
 * connection and `concurrency` calls outstanding at once, so the SDK's own cost (validation,
 * encoding, session choice, retries bookkeeping) is in the measurement.
 */
export async function runSdkLoad(
  addresses: readonly string[],
  spec: SdkLoadSpec,
  tenantStream: readonly [number, number],
): Promise<LoadResult> {
  const { client, target, events } = await sdkClient(addresses, spec, tenantStream);
  const latencies: number[] = [];
  const cpuBefore = process.cpuUsage();
  const started = performance.now();
  const deadline = started + spec.durationMs;
  await Promise.all(
    Array.from({ length: spec.concurrency }, async () => {
      while (performance.now() < deadline) {
        const sent = performance.now();
        await client.append({ ...target, events }, { reason: 'benchmark' });
        latencies.push(performance.now() - sent);
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpuBefore);
  await client.close();
  return resultOf({ sessions: spec.concurrency, eventsPerAppend: 1 }, latencies, seconds, cpu);
}

/**
 * Open-loop load through the SDK at a fixed rate: one-event appends are called on a schedule
 * (`eventsPerSecond` in all) whatever the answers do, so the SDK may have any number of calls
 * outstanding; latency is measured from each call's scheduled time (no coordinated omission).
 * With coalesceAppends the SDK merges the calls that arrive while its slots are busy.
 */
export async function runPacedSdkLoad(
  addresses: readonly string[],
  spec: SdkLoadSpec & { readonly eventsPerSecond: number },
  tenantStream: readonly [number, number],
): Promise<LoadResult> {
  const { client, target, events } = await sdkClient(addresses, spec, tenantStream);
  const latencies: number[] = [];
  const intervalMs = 1000 / spec.eventsPerSecond;
  const total = Math.floor(spec.durationMs / intervalMs);
  const calls: Array<Promise<void>> = [];
  const cpuBefore = process.cpuUsage();
  const started = performance.now();
  let sent = 0;
  while (sent < total) {
    const due = Math.min(total, Math.floor((performance.now() - started) / intervalMs) + 1);
    for (; sent < due; sent++) {
      const scheduled = started + sent * intervalMs;
      calls.push(
        client.append({ ...target, events }, { reason: 'benchmark' }).then(() => {
          latencies.push(performance.now() - scheduled);
        }),
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  await Promise.all(calls);
  const seconds = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpuBefore);
  await client.close();
  return resultOf({ sessions: spec.concurrency, eventsPerAppend: 1 }, latencies, seconds, cpu);
}
