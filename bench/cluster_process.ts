// Real kimberlite-server processes for benchmarks: one node or a cluster on loopback, each on
// its own temporary data directory and free ports. A node is started with the same arguments
// every time, so a node killed with SIGKILL can be started again on its data directory (as a
// supervisor would). Readiness is the "Node ready" log line; log lines are otherwise dropped
// (benchmarks print numbers, not logs). Benchmarks only: tests have test/harness.ts.

import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import type { ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { serverNodeFlags } from '../src/cli/node_flags.js';
import { fetchNodeStatus } from '../src/client/client.js';
import type { NodeStatus } from '../src/client/client.js';

const readyTimeoutMs = 30_000;
const stopTimeoutMs = 15_000;

/** A port nobody listens on right now (the kernel's choice for port 0). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

/** Starts a server with `args` and resolves with the process once it logs "Node ready". */
export async function startServerProcess(
  args: readonly string[],
  env: Readonly<Record<string, string>> = {},
  onLine?: (line: string) => void,
  nodeArgs: readonly string[] = [],
): Promise<ChildProcess> {
  const child = spawn(
    process.execPath,
    [...serverNodeFlags, ...nodeArgs, 'bin/kimberlite-server.js', ...args],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...env },
    },
  );
  child.stderr?.resume();
  const lines = createInterface({ input: child.stdout! });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL'); // A server that never became ready must not outlive the benchmark.
      reject(new Error('server did not become ready'));
    }, readyTimeoutMs);
    const onExit = (code: number | null): void => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${String(code)} before it was ready`));
    };
    if (onLine !== undefined) lines.on('line', onLine);
    lines.on('line', (line) => {
      if (!line.includes('"Node ready"')) return;
      clearTimeout(timer);
      child.off('exit', onExit);
      resolve();
    });
    child.once('exit', onExit);
  });
  return child;
}

async function waitForExit(child: ChildProcess, timeoutMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  await new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, timeoutMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/** A local cluster of `size` replicas named `name`, data under `root`. */
export class BenchCluster {
  private readonly children: Array<ChildProcess | null>;

  private constructor(
    readonly name: string,
    readonly addresses: readonly string[],
    readonly opsAddresses: readonly string[],
    readonly dataDirs: readonly string[],
    private readonly env: Readonly<Record<string, string>>,
    private readonly onLine: ((id: number, line: string) => void) | undefined,
    private readonly nodeArgs: readonly string[],
  ) {
    this.children = addresses.map(() => null);
  }

  static async start(
    root: string,
    size: number,
    options: {
      name?: string;
      env?: Readonly<Record<string, string>>;
      /** Every line each replica writes to stdout (its JSON log, and anything V8 prints). */
      onLine?: (id: number, line: string) => void;
      /** Flags for node itself, before the server script (V8 flags NODE_OPTIONS refuses). */
      nodeArgs?: readonly string[];
    } = {},
  ): Promise<BenchCluster> {
    const ports: number[] = [];
    while (ports.length < size * 2) {
      const port = await freePort();
      if (!ports.includes(port)) ports.push(port);
    }
    const addresses = ports.slice(0, size).map((port) => `127.0.0.1:${port}`);
    const ops = ports.slice(size).map((port) => `127.0.0.1:${port}`);
    const dataDirs = addresses.map((_, id) => join(root, `node-${id}`));
    const env = options.env ?? {};
    const name = options.name ?? 'bench';
    const cluster = new BenchCluster(name, addresses, ops, dataDirs, env, options.onLine, [
      ...(options.nodeArgs ?? []),
    ]);
    const started = await Promise.allSettled(addresses.map((_, id) => cluster.startNode(id)));
    const failed = started.find((outcome) => outcome.status === 'rejected');
    if (failed !== undefined) {
      await cluster.stop(); // Never leave the replicas that did start running.
      throw failed.reason;
    }
    return cluster;
  }

  get size(): number {
    return this.addresses.length;
  }

  /** Starts replica `id` (again) on its data directory. */
  async startNode(id: number): Promise<void> {
    const args = [
      '--node-id',
      String(id),
      '--address',
      this.addresses[id] ?? '',
      '--cluster-peers',
      this.addresses.join(','),
      '--metrics-address',
      this.opsAddresses[id] ?? '',
      '--data-dir',
      this.dataDirs[id] ?? '',
      '--cluster-name',
      this.name,
    ];
    const onLine = this.onLine;
    this.children[id] = await startServerProcess(
      args,
      this.env,
      onLine === undefined ? undefined : (line) => onLine(id, line),
      this.nodeArgs,
    );
  }

  /**
   * Each running replica's CPU time and run-queue wait so far, in ms (Linux
   * /proc/PID/schedstat: time on a CPU, time runnable but waiting for one), or null where the
   * system does not say. Two readings apart show how long each process waited for a CPU.
   */
  schedule(): Array<CpuSchedule | null> {
    return this.children.map((child) =>
      child?.pid === undefined ? null : readSchedule(child.pid),
    );
  }

  /** Sends a signal to replica `id` (SIGSTOP pauses it with its sockets open; SIGCONT). */
  signal(id: number, signal: NodeJS.Signals): void {
    this.children[id]?.kill(signal);
  }

  /** SIGKILL: the process dies wherever it is, as in a power cut of one machine. */
  async kill(id: number): Promise<void> {
    const child = this.children[id];
    if (child === null || child === undefined) return;
    child.kill('SIGKILL');
    await waitForExit(child, stopTimeoutMs);
    this.children[id] = null;
  }

  /** SIGTERM every node (graceful stop), SIGKILL after a grace period. */
  async stop(): Promise<void> {
    await Promise.all(
      this.children.map(async (child) => {
        if (child === null) return;
        child.kill('SIGTERM');
        await waitForExit(child, stopTimeoutMs);
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      }),
    );
    this.children.fill(null);
  }

  /** Replica `id`'s own status, or null if it does not answer. */
  async status(id: number): Promise<NodeStatus | null> {
    try {
      const address = this.addresses[id] ?? '';
      return await fetchNodeStatus(address, { timeoutMs: 1_000, clusterName: this.name });
    } catch {
      return null;
    }
  }

  /** Waits until one running replica leads a view a quorum of running replicas is normal in. */
  async waitForLeader(timeoutMs = 30_000): Promise<{ leader: number; view: number }> {
    const deadline = performance.now() + timeoutMs;
    const quorum = Math.floor(this.size / 2) + 1;
    while (performance.now() < deadline) {
      const statuses = await Promise.all(this.addresses.map((_, id) => this.status(id)));
      const leader = statuses.find((s) => s !== null && s.isLeader && s.quorumReachable !== false);
      if (leader !== undefined && leader !== null) {
        const normal = statuses.filter(
          (s) => s !== null && s.status === 'normal' && s.view === leader.view,
        );
        if (normal.length >= quorum) return { leader: leader.nodeId, view: leader.view };
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    throw new Error(`no leader within ${timeoutMs} ms`);
  }

  /** Waits until every replica is normal in one view with the same commit number. */
  async waitForConvergence(timeoutMs = 60_000): Promise<number> {
    const deadline = performance.now() + timeoutMs;
    while (performance.now() < deadline) {
      const statuses = await Promise.all(this.addresses.map((_, id) => this.status(id)));
      const first = statuses[0];
      const same = statuses.every(
        (s) =>
          s !== null &&
          first !== null &&
          first !== undefined &&
          s.status === 'normal' &&
          s.view === first.view &&
          s.commitNumber === first.commitNumber,
      );
      if (same && first !== null && first !== undefined) return first.commitNumber;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new Error(`replicas did not converge within ${timeoutMs} ms`);
  }
}

/** CPU time and run-queue wait of one process, in ms. */
export interface CpuSchedule {
  readonly runMs: number;
  readonly waitMs: number;
}

/** A process's schedstat ("self" for this one), or null when the system has none. */
export function readSchedule(pid: number | 'self'): CpuSchedule | null {
  try {
    const [run, wait] = readFileSync(`/proc/${pid}/schedstat`, 'utf8').trim().split(' ');
    return { runMs: Number(run) / 1e6, waitMs: Number(wait) / 1e6 };
  } catch {
    return null;
  }
}
