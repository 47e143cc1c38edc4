// The failover benchmark: how long a 3-replica cluster takes to acknowledge writes again after
// its leader is SIGKILLed under a steady write load. Each trial: SDK writers append single
// 100-byte events as fast as they are answered; after a second of load the leader is killed; the
// failover time is from the kill to the acknowledgement of the first append *called after* the
// kill (an append called later can only be committed by a successor, so this bounds the outage
// from above as a client sees it). The time until a new leader reports itself is printed too.
// The killed replica is then started again on its data directory and the cluster is left to
// converge before the next trial, which kills the new leader; so every trial starts from three
// healthy replicas and the leadership moves around the cluster.
//
// It measures and prints; it never passes or fails on time (HOUSE_RULES §9).
//   node --import tsx bench/failover.ts [--trials N] [--small] [--json]
// With --json the last line is one JSON object: {failover_ms_p50, failover_ms_max, trials, ...}.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, KmbError } from '../src/client/client.js';
import type { Client } from '../src/client/client.js';
import { BenchCluster } from './cluster_process.js';

interface Trial {
  readonly killed: number;
  readonly newLeader: number;
  readonly view: number;
  /** Kill → first acknowledgement of an append called after the kill. */
  readonly failoverMs: number;
  /** Kill → a survivor reports itself leader of a view a quorum is normal in. */
  readonly electedMs: number;
}

const argv = process.argv.slice(2);
const small = argv.includes('--small');
const trialsFlag = argv.indexOf('--trials');
const trialCount = trialsFlag >= 0 ? Number(argv[trialsFlag + 1]) : small ? 1 : 10;
const writerCount = 8;
const loadBeforeKillMs = small ? 500 : 1_000;
const payload = 'x'.repeat(100);

/** Writers appending as fast as they are answered; remembers when each append was called/acked. */
class Load {
  private stopping = false;
  private loops: Promise<void> = Promise.resolve();
  /** [calledAtMs, ackedAtMs] of every acknowledged append, in ack order. */
  readonly acks: Array<readonly [number, number]> = [];
  failures = 0;

  constructor(
    private readonly clients: readonly Client[],
    private readonly target: { tenantId: number; streamId: number },
  ) {}

  start(): void {
    this.loops = Promise.all(this.clients.map((client) => this.writer(client))).then(() => {});
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await this.loops;
  }

  firstAckCalledAfter(sinceMs: number): number | null {
    const ack = this.acks.find(([calledAtMs]) => calledAtMs > sinceMs);
    return ack === undefined ? null : ack[1];
  }

  private async writer(client: Client): Promise<void> {
    while (!this.stopping) {
      const calledAtMs = performance.now();
      try {
        await client.append({ ...this.target, events: [payload] });
        this.acks.push([calledAtMs, performance.now()]);
      } catch (error) {
        if (!(error instanceof KmbError)) throw error;
        this.failures++; // Timeouts and lost connections during the outage; the SDK retried.
      }
    }
  }
}

async function waitFor(check: () => number | null, timeoutMs: number): Promise<number> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const value = check();
    if (value !== null) return value;
    if (performance.now() > deadline) throw new Error(`nothing within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

async function runTrial(cluster: BenchCluster, load: Load): Promise<Trial> {
  const before = await cluster.waitForLeader();
  await new Promise((resolve) => setTimeout(resolve, loadBeforeKillMs));
  const killedAtMs = performance.now();
  await cluster.kill(before.leader);
  const elected = cluster.waitForLeader().then((after) => ({ after, atMs: performance.now() }));
  const ackedAtMs = await waitFor(() => load.firstAckCalledAfter(killedAtMs), 60_000);
  const { after, atMs } = await elected;
  await cluster.startNode(before.leader);
  await cluster.waitForConvergence();
  return {
    killed: before.leader,
    newLeader: after.leader,
    view: after.view,
    failoverMs: ackedAtMs - killedAtMs,
    electedMs: atMs - killedAtMs,
  };
}

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? NaN;
}

async function main(): Promise<void> {
  const root = await mkdtemp(join(tmpdir(), 'kmb-failover-'));
  const cluster = await BenchCluster.start(root, 3, { name: 'failover-bench' });
  const clients: Client[] = [];
  const trials: Trial[] = [];
  let load: Load | null = null;
  try {
    const options = { addresses: cluster.addresses, clusterName: cluster.name };
    const setup = await connect({ ...options, requestTimeoutMs: 30_000 });
    const tenant = await setup.createTenant('failover');
    const stream = await setup.createStream({ tenantId: tenant.tenantId, name: 'events' });
    await setup.close();
    for (let index = 0; index < writerCount; index++) {
      clients.push(
        await connect({ ...options, requestTimeoutMs: 60_000, attemptTimeoutMs: 1_000 }),
      );
    }
    load = new Load(clients, { tenantId: tenant.tenantId, streamId: stream.streamId });
    load.start();
    for (let index = 0; index < trialCount; index++) {
      const trial = await runTrial(cluster, load);
      trials.push(trial);
      console.log(
        `trial ${index + 1}: killed leader ${trial.killed}; replica ${trial.newLeader} leads ` +
          `view ${trial.view} after ${trial.electedMs.toFixed(0)} ms; first acknowledged write ` +
          `${trial.failoverMs.toFixed(0)} ms after the kill`,
      );
    }
  } finally {
    await load?.stop();
    await Promise.all(clients.map((client) => client.close()));
    await cluster.stop();
    await rm(root, { recursive: true, force: true });
  }
  report(trials, load?.acks.length ?? 0);
}

function report(trials: readonly Trial[], ackCount: number): void {
  const failover = trials.map((trial) => trial.failoverMs).sort((a, b) => a - b);
  const elected = trials.map((trial) => trial.electedMs).sort((a, b) => a - b);
  const summary = {
    failover_trials: trials.length,
    failover_ms_p50: Math.round(percentile(failover, 0.5)),
    failover_ms_min: Math.round(failover[0] ?? NaN),
    failover_ms_max: Math.round(failover.at(-1) ?? NaN),
    failover_elected_ms_p50: Math.round(percentile(elected, 0.5)),
    failover_acknowledged_appends: ackCount,
  };
  console.log(
    `failover over ${summary.failover_trials} trials (3 replicas, ${writerCount} writers, SIGKILL of the ` +
      `leader): first acknowledged write p50 ${summary.failover_ms_p50} ms, min ` +
      `${summary.failover_ms_min} ms, max ${summary.failover_ms_max} ms; new leader p50 ` +
      `${summary.failover_elected_ms_p50} ms`,
  );
  if (argv.includes('--json')) console.log(JSON.stringify(summary));
}

await main();
