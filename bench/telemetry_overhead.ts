// The telemetry overhead benchmark: the same single-node append load against two real
// kimberlite-server processes, one with all telemetry off ([telemetry] metrics_enabled = false,
// no OTLP, no StatsD, no tracing) and one with all of it on (/metrics scraped every second by
// this benchmark, OTLP metrics pushed to a loopback receiver and StatsD lines to a loopback UDP
// socket every second, and tracing to the same receiver unless --no-tracing). Trials alternate
// between the two (off/on, then on/off, ...) so that drift in the machine or the disk falls on
// both; it prints events/s per trial, the medians and their ratio on/off (1.0 = no overhead; the
// spec's goal is an overhead below 1%, i.e. a ratio above 0.99). It measures and prints; it never
// passes or fails on time (HOUSE_RULES §9). The receivers run in their own process
// (bench/telemetry_sink.ts), so collecting what the node sends costs the load generator nothing.
//   node --import tsx bench/telemetry_overhead.ts [--small | --quick] [--json] [--no-tracing]
// With --json the last line is {"telemetry_overhead_ratio": ..., "telemetry_overhead": {...}}.

import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { asStreamId, asTenantId } from '../src/core/types.js';
import { RawClient, newClientId } from '../src/testing/raw_client.js';

const args = new Set(process.argv.slice(2));
const small = args.has('--small');
const quick = args.has('--quick');
const tracing = !args.has('--no-tracing');
const trialMs = small ? 400 : quick ? 1500 : 3000;
const pairCount = small ? 2 : quick ? 3 : 5;
const sessionCount = 32;
const connectionCount = 4;
const eventSizeBytes = 100;
const audit = { actor: 'bench', reason: 'telemetry overhead', correlationId: null };

interface Server {
  readonly child: ChildProcess;
  readonly address: string;
  readonly metricsAddress: string | null;
}

function childEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!key.startsWith('KMB_') && !key.startsWith('RUST_LOG')) env[key] = value;
  }
  return { ...env, ...extra };
}

async function startServer(dataDir: string, env: Record<string, string>): Promise<Server> {
  const flags = ['--address', '127.0.0.1:0', '--metrics-address', '127.0.0.1:0'];
  const child = spawn(
    process.execPath,
    ['bin/kimberlite-server.js', ...flags, '--data-dir', dataDir, '--cluster-name', 'bench'],
    { stdio: ['ignore', 'pipe', 'inherit'], env: childEnv(env) },
  );
  const lines = createInterface({ input: child.stdout! });
  return new Promise<Server>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('server did not become ready')), 30_000);
    lines.on('line', (line) => {
      let entry: { message?: string; fields?: Record<string, unknown> };
      try {
        entry = JSON.parse(line) as typeof entry;
      } catch {
        return;
      }
      if (entry.message !== 'Node ready') return;
      clearTimeout(timer);
      const metrics = entry.fields?.['metrics_address'];
      resolve({
        child,
        address: String(entry.fields?.['address']),
        metricsAddress: typeof metrics === 'string' ? metrics : null,
      });
    });
    child.once('exit', (code) => reject(new Error(`server exited with ${String(code)}`)));
  });
}

async function stopServer(server: Server): Promise<void> {
  if (server.child.exitCode !== null) return;
  const exited = new Promise((resolve) => server.child.once('exit', resolve));
  server.child.kill('SIGTERM');
  await exited;
}

async function createStream(address: string): Promise<void> {
  const setup = await RawClient.connect(address);
  const admin = newClientId();
  await setup.request(admin, 0, null);
  await setup.request(admin, 1, { kind: 'create_tenant', name: 'bench', audit });
  const stream = { kind: 'create_stream', tenantId: asTenantId(1), name: 'events' } as const;
  await setup.request(admin, 2, { ...stream, dataClass: 'Public', audit });
  setup.close();
}

/** Appends one event per request from every session for trialMs; returns events per second. */
async function trial(address: string): Promise<number> {
  const clients = await Promise.all(
    Array.from({ length: connectionCount }, () => RawClient.connect(address)),
  );
  const sessions = Array.from({ length: sessionCount }, (_, i) => ({
    id: newClientId(),
    client: clients[i % connectionCount]!,
    requestNumber: 0,
  }));
  await Promise.all(sessions.map((s) => s.client.request(s.id, s.requestNumber++, null)));
  const events = [new Uint8Array(eventSizeBytes).fill(0x61)];
  const target = { tenantId: asTenantId(1), streamId: asStreamId(1), expectedOffset: null };
  let appended = 0;
  const started = performance.now();
  const deadline = started + trialMs;
  await Promise.all(
    sessions.map(async (session) => {
      while (performance.now() < deadline) {
        const request = { kind: 'append', ...target, events, audit } as const;
        const answer = await session.client.request(session.id, session.requestNumber++, request);
        if (answer.kind !== 'reply') throw new Error(`append failed: ${JSON.stringify(answer)}`);
        appended += 1;
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  for (const client of clients) client.close();
  return appended / seconds;
}

/** Scrapes /metrics every second, as a Prometheus would, until stopped. */
function startScraper(metricsAddress: string): { stop(): void; count(): number } {
  let scrapes = 0;
  const timer = setInterval(() => {
    void fetch(`http://${metricsAddress}/metrics`)
      .then((response) => response.text())
      .then(() => (scrapes += 1))
      .catch(() => undefined);
  }, 1000);
  return { stop: () => clearInterval(timer), count: () => scrapes };
}

interface Sink {
  readonly child: ChildProcess;
  readonly otlp: string;
  readonly statsd: string;
  /** Stops the sink; resolves with what it received. */
  stop(): Promise<Received>;
}

interface Received {
  readonly otlpMetricRequests: number;
  readonly spans: number;
  readonly statsdLines: number;
}

async function startSink(): Promise<Sink> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'bench/telemetry_sink.ts'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  const first = await lines.next();
  const { otlp, statsd } = JSON.parse(String(first.value)) as { otlp: string; statsd: string };
  const stop = async (): Promise<Received> => {
    child.kill('SIGTERM');
    const last = await lines.next();
    return JSON.parse(String(last.value)) as Received;
  };
  return { child, otlp, statsd, stop };
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? (sorted[middle] ?? 0)
    : ((sorted[middle - 1] ?? 0) + (sorted[middle] ?? 0)) / 2;
}

interface Outcome extends Received {
  readonly off: number[];
  readonly on: number[];
  readonly scrapes: number;
}

async function measure(dir: string, sink: Sink): Promise<Outcome> {
  const offEnv = { KMB_TELEMETRY_METRICS_ENABLED: 'false' };
  const onEnv: Record<string, string> = {
    KMB_TELEMETRY_METRICS_ENABLED: 'true',
    KMB_TELEMETRY_OTLP_ENDPOINT: sink.otlp,
    KMB_TELEMETRY_STATSD_ADDRESS: sink.statsd,
    KMB_TELEMETRY_EXPORT_INTERVAL_SECS: '1',
    ...(tracing
      ? { KMB_TELEMETRY_TRACING_ENABLED: 'true', KMB_TELEMETRY_TRACING_ENDPOINT: sink.otlp }
      : {}),
  };
  const off = await startServer(join(dir, 'off'), offEnv);
  const on = await startServer(join(dir, 'on'), onEnv).catch(async (error: unknown) => {
    await stopServer(off);
    throw error;
  });
  const scraper = startScraper(on.metricsAddress ?? '127.0.0.1:9');
  const trials = { off: [] as number[], on: [] as number[] };
  try {
    await Promise.all([createStream(off.address), createStream(on.address)]);
    for (let pair = 0; pair < pairCount; pair += 1) {
      const order = pair % 2 === 0 ? (['off', 'on'] as const) : (['on', 'off'] as const);
      for (const which of order) {
        trials[which].push(await trial(which === 'off' ? off.address : on.address));
      }
    }
  } finally {
    scraper.stop();
    await Promise.all([stopServer(off), stopServer(on)]);
  }
  // The servers' final exports have arrived: they stopped gracefully before the sink stops.
  return { ...trials, scrapes: scraper.count(), ...(await sink.stop()) };
}

function print(outcome: Outcome, ratio: number): void {
  console.log(
    `telemetry overhead: single node, fsync on, ${sessionCount} sessions, 1 event per append, ` +
      `${pairCount} alternating trial pairs of ${trialMs} ms`,
  );
  const rows = outcome.off.map(
    (off, i) =>
      `  pair ${i + 1}: off ${Math.round(off)} events/s, ` +
      `on ${Math.round(outcome.on[i] ?? 0)} events/s`,
  );
  for (const row of rows) console.log(row);
  console.log(
    `all telemetry on: ${outcome.scrapes} scrapes, ${outcome.otlpMetricRequests} OTLP metric ` +
      `exports, ${outcome.spans} spans${tracing ? '' : ' (tracing off: --no-tracing)'}, ` +
      `${outcome.statsdLines} StatsD lines received`,
  );
  console.log(
    `median events/s off ${Math.round(median(outcome.off))}, on ${Math.round(median(outcome.on))}` +
      `; ratio on/off ${ratio.toFixed(4)} (overhead ${((1 - ratio) * 100).toFixed(2)}%, goal < 1%)`,
  );
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'kmb-bench-telemetry-'));
  const sink = await startSink();
  try {
    const outcome = await measure(dir, sink);
    const ratio = median(outcome.on) / median(outcome.off);
    print(outcome, ratio);
    if (args.has('--json')) {
      console.log(
        JSON.stringify({
          telemetry_overhead_ratio: ratio,
          telemetry_overhead: {
            off_events_per_s: Math.round(median(outcome.off)),
            on_events_per_s: Math.round(median(outcome.on)),
            trials_off: outcome.off.map(Math.round),
            trials_on: outcome.on.map(Math.round),
            tracing,
            spans_received: outcome.spans,
            otlp_metric_exports: outcome.otlpMetricRequests,
            statsd_lines: outcome.statsdLines,
            scrapes: outcome.scrapes,
          },
        }),
      );
    }
  } finally {
    if (sink.child.exitCode === null) sink.child.kill('SIGTERM');
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
