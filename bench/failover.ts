// The failover benchmark: how long a 3-replica cluster takes to acknowledge writes again after
// its leader fails under a steady write load, in two ways:
//   - kill: the leader is SIGKILLed; its connections close, so clients learn at once;
//   - pause: the leader is SIGSTOPped for pauseMs (a long GC pause, a stuck VM, a partition
//     that leaves its sockets open): it accepts connections and answers nothing, so clients
//     learn only from their own attempt timeout, and the backups still in its view name it as
//     the leader until they elect another.
// Each trial: SDK writers append single 100-byte events as fast as they are answered; after a
// second of load the leader fails; the failover time is from the fault to the acknowledgement of
// the first append *called after* it (an append called later can only be committed by a
// successor, so this bounds the outage from above as a client sees it). The time until a new
// leader reports itself is printed too. A killed replica is then started again on its data
// directory, and how long it takes from "Node ready" to reporting itself normal in the current
// view is measured (the rejoin: recovery over the replica links); a paused one is continued.
// The cluster converges before the next trial, which fails the new leader, so every trial starts
// from three healthy replicas and the leadership moves around the cluster.
//
// It measures and prints; it never passes or fails on time (HOUSE_RULES §9).
// Last, backup restarts: a backup is killed, stays down backupDownMs under the load (so the
// replicas that dial it back off to their ceiling), and is restarted; the time from its "Node
// ready" to normal is measured (issue 16: the links must come back at once).
//
//   node --import tsx bench/failover.ts [--trials N] [--pause-trials N] [--backup-trials N]
//     [--small] [--json]
// With --json the last line is one JSON object: {failover_ms_p50, failover_ms_max,
// failover_pause_ms_p50, failover_pause_ms_max, failover_rejoin_ms_p50,
// failover_backup_rejoin_ms_p50, ...}.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, KmbError } from '../src/client/client.js';
import type { Client } from '../src/client/client.js';
import { BenchCluster } from './cluster_process.js';

type Fault = 'kill' | 'pause';

/** A backup's restart: how long from its "Node ready" until it reports itself normal. */
interface BackupTrial {
  readonly backup: number;
  readonly rejoinMs: number;
  /** From the restart (the process spawned) to normal: start-up included. */
  readonly restartMs: number;
}

interface Trial {
  readonly fault: Fault;
  readonly failed: number;
  readonly newLeader: number;
  readonly view: number;
  /** Fault → first acknowledgement of an append called after the fault. */
  readonly failoverMs: number;
  /** Fault → a survivor reports itself leader of a view a quorum is normal in. */
  readonly electedMs: number;
  /** Kill trials: the restarted replica's "Node ready" → normal in the current view. */
  readonly rejoinMs: number | null;
}

const argv = process.argv.slice(2);
const small = argv.includes('--small');
function countFlag(name: string, fallback: number): number {
  const at = argv.indexOf(name);
  return at >= 0 ? Number(argv[at + 1]) : fallback;
}
const trialCount = countFlag('--trials', small ? 1 : 20);
/** Pause trials: half the kill trials (at least one): each holds the cluster for pauseMs. */
const pauseTrialCount = countFlag('--pause-trials', Math.max(1, Math.floor(trialCount / 2)));
/** Backup restarts: a quarter of the kill trials (at least one). */
const backupTrialCount = countFlag('--backup-trials', Math.max(1, Math.floor(trialCount / 4)));
/**
 * How long a backup stays down before its restart: long enough for the replicas that dial it to
 * have backed off to their reconnect ceiling (2 s), as after any real crash and restart.
 */
const backupDownMs = small ? 3_000 : 5_000;
const writerCount = 8;
const loadBeforeFaultMs = small ? 500 : 1_000;
/** How long a paused leader stays stopped: longer than any failover it could hide. */
const pauseMs = small ? 2_500 : 4_000;
/** The writers' budgets: one attempt, and the whole call (long: a call outlives an outage). */
const attemptTimeoutMs = 1_000;
const requestTimeoutMs = 60_000;
const statusPollMs = 10;
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

/** When replica `id` first reports itself normal in `view` or later (performance.now()). */
async function normalAt(cluster: BenchCluster, id: number, view: number): Promise<number> {
  const deadline = performance.now() + 60_000;
  while (performance.now() < deadline) {
    const status = await cluster.status(id);
    if (status !== null && status.status === 'normal' && status.view >= view) {
      return performance.now();
    }
    await new Promise((resolve) => setTimeout(resolve, statusPollMs));
  }
  throw new Error(`replica ${id} was not normal within 60 s`);
}

async function runTrial(cluster: BenchCluster, load: Load, fault: Fault): Promise<Trial> {
  const before = await cluster.waitForLeader();
  await new Promise((resolve) => setTimeout(resolve, loadBeforeFaultMs));
  const faultAtMs = performance.now();
  let resume: NodeJS.Timeout | undefined;
  if (fault === 'kill') await cluster.kill(before.leader);
  else {
    cluster.signal(before.leader, 'SIGSTOP');
    // Continued after pauseMs whatever the clients do: a client that waits for the paused
    // leader gets through only then, and that is what the trial measures.
    resume = setTimeout(() => cluster.signal(before.leader, 'SIGCONT'), pauseMs);
  }
  let rejoinMs: number | null = null;
  try {
    const elected = cluster.waitForLeader().then((after) => ({ after, atMs: performance.now() }));
    const ackedAtMs = await waitFor(() => load.firstAckCalledAfter(faultAtMs), 60_000);
    const { after, atMs } = await elected;
    if (fault === 'kill') {
      await cluster.startNode(before.leader);
      const readyAtMs = performance.now();
      rejoinMs = (await normalAt(cluster, before.leader, after.view)) - readyAtMs;
    } else {
      const leftMs = pauseMs - (performance.now() - faultAtMs);
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, leftMs)));
    }
    return {
      fault,
      failed: before.leader,
      newLeader: after.leader,
      view: after.view,
      failoverMs: ackedAtMs - faultAtMs,
      electedMs: atMs - faultAtMs,
      rejoinMs,
    };
  } finally {
    clearTimeout(resume);
    if (fault === 'pause') cluster.signal(before.leader, 'SIGCONT');
    await cluster.waitForConvergence();
  }
}

/**
 * Kills a backup (the highest-numbered one that is not the leader: the replicas below it dial
 * it, so its links come back by their redial or its knock), keeps the load on the quorum left
 * for backupDownMs, restarts it and measures how long it takes to become normal after "Node
 * ready".
 */
async function runBackupTrial(cluster: BenchCluster): Promise<BackupTrial> {
  const { leader } = await cluster.waitForLeader();
  const backup = leader === cluster.size - 1 ? cluster.size - 2 : cluster.size - 1;
  await cluster.kill(backup);
  await new Promise((resolve) => setTimeout(resolve, backupDownMs));
  const { view } = await cluster.waitForLeader();
  const spawnedAtMs = performance.now();
  await cluster.startNode(backup);
  const readyAtMs = performance.now();
  const normalAtMs = await normalAt(cluster, backup, view);
  await cluster.waitForConvergence();
  return { backup, rejoinMs: normalAtMs - readyAtMs, restartMs: normalAtMs - spawnedAtMs };
}

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? NaN;
}

/** The faults in trial order: pause trials spread among the kill trials. */
function schedule(): Fault[] {
  const faults: Fault[] = [];
  const total = trialCount + pauseTrialCount;
  let pauses = 0;
  for (let index = 0; index < total; index++) {
    const pauseDue = (index + 1) * pauseTrialCount >= (pauses + 1) * total;
    if (pauseDue && pauses < pauseTrialCount) {
      faults.push('pause');
      pauses += 1;
    } else faults.push('kill');
  }
  return faults;
}

async function main(): Promise<void> {
  const root = await mkdtemp(join(tmpdir(), 'kmb-failover-'));
  const cluster = await BenchCluster.start(root, 3, { name: 'failover-bench' });
  const clients: Client[] = [];
  const trials: Trial[] = [];
  const backups: BackupTrial[] = [];
  let load: Load | null = null;
  try {
    const options = { addresses: cluster.addresses, clusterName: cluster.name };
    const setup = await connect({ ...options, requestTimeoutMs: 30_000 });
    const tenant = await setup.createTenant('failover');
    const stream = await setup.createStream({ tenantId: tenant.tenantId, name: 'events' });
    await setup.close();
    for (let index = 0; index < writerCount; index++) {
      clients.push(await connect({ ...options, requestTimeoutMs, attemptTimeoutMs }));
    }
    load = new Load(clients, { tenantId: tenant.tenantId, streamId: stream.streamId });
    load.start();
    for (const [index, fault] of schedule().entries()) {
      const trial = await runTrial(cluster, load, fault);
      trials.push(trial);
      const rejoin = trial.rejoinMs === null ? '' : `; rejoined ${trial.rejoinMs.toFixed(0)} ms`;
      console.log(
        `trial ${index + 1}: ${fault} of leader ${trial.failed}; ` +
          `replica ${trial.newLeader} leads ` +
          `view ${trial.view} after ${trial.electedMs.toFixed(0)} ms; first acknowledged write ` +
          `${trial.failoverMs.toFixed(0)} ms after the ${fault}${rejoin}`,
      );
    }
    for (let index = 0; index < backupTrialCount; index++) {
      const trial = await runBackupTrial(cluster);
      backups.push(trial);
      console.log(
        `backup trial ${index + 1}: replica ${trial.backup} down ${backupDownMs} ms, normal ` +
          `${trial.rejoinMs.toFixed(0)} ms after its restart's "Node ready" ` +
          `(${trial.restartMs.toFixed(0)} ms after the restart)`,
      );
    }
  } finally {
    await load?.stop();
    await Promise.all(clients.map((client) => client.close()));
    await cluster.stop();
    await rm(root, { recursive: true, force: true });
  }
  report(trials, backups, load?.acks.length ?? 0);
}

function sortedOf(values: readonly number[]): number[] {
  return [...values].sort((a, b) => a - b);
}

function report(trials: readonly Trial[], backups: readonly BackupTrial[], ackCount: number): void {
  const kills = trials.filter((trial) => trial.fault === 'kill');
  const pauses = trials.filter((trial) => trial.fault === 'pause');
  const failover = sortedOf(kills.map((trial) => trial.failoverMs));
  const paused = sortedOf(pauses.map((trial) => trial.failoverMs));
  const elected = sortedOf(kills.map((trial) => trial.electedMs));
  const rejoin = sortedOf(
    kills.flatMap((trial) => (trial.rejoinMs === null ? [] : [trial.rejoinMs])),
  );
  const backupRejoin = sortedOf(backups.map((trial) => trial.rejoinMs));
  const summary = {
    failover_trials: kills.length,
    failover_ms_p50: Math.round(percentile(failover, 0.5)),
    failover_ms_min: Math.round(failover[0] ?? NaN),
    failover_ms_max: Math.round(failover.at(-1) ?? NaN),
    failover_elected_ms_p50: Math.round(percentile(elected, 0.5)),
    failover_pause_trials: pauses.length,
    failover_pause_ms_p50: Math.round(percentile(paused, 0.5)),
    failover_pause_ms_max: Math.round(paused.at(-1) ?? NaN),
    failover_rejoin_ms_p50: Math.round(percentile(rejoin, 0.5)),
    failover_rejoin_ms_max: Math.round(rejoin.at(-1) ?? NaN),
    failover_backup_trials: backups.length,
    failover_backup_rejoin_ms_p50: Math.round(percentile(backupRejoin, 0.5)),
    failover_backup_rejoin_ms_max: Math.round(backupRejoin.at(-1) ?? NaN),
    failover_acknowledged_appends: ackCount,
  };
  console.log(
    `failover over ${summary.failover_trials} trials ` +
      `(3 replicas, ${writerCount} writers, SIGKILL ` +
      `of the leader): first acknowledged write p50 ${summary.failover_ms_p50} ms, min ` +
      `${summary.failover_ms_min} ms, max ${summary.failover_ms_max} ms; new leader p50 ` +
      `${summary.failover_elected_ms_p50} ms; the restarted replica normal again p50 ` +
      `${summary.failover_rejoin_ms_p50} ms, max ${summary.failover_rejoin_ms_max} ms after ` +
      `"Node ready"`,
  );
  console.log(
    `failover over ${summary.failover_pause_trials} trials with the leader paused (SIGSTOP for ` +
      `${pauseMs} ms): first acknowledged write p50 ${summary.failover_pause_ms_p50} ms, max ` +
      `${summary.failover_pause_ms_max} ms`,
  );
  console.log(
    `backup restarts over ${summary.failover_backup_trials} trials (down ${backupDownMs} ms): ` +
      `normal p50 ${summary.failover_backup_rejoin_ms_p50} ms, max ` +
      `${summary.failover_backup_rejoin_ms_max} ms after "Node ready"`,
  );
  if (argv.includes('--json')) console.log(JSON.stringify(summary));
}

await main();
