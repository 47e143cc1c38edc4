// The peer database for the throughput benchmark: a 3-member etcd cluster on loopback (the
// Debian `etcd-server` package), fsync on as etcd always has it, driven by `wrk` (C, epoll, two
// threads) putting 100-byte values through etcd's JSON gateway on the leader, one request in
// flight per connection — the same shape as our benchmark's sessions. wrk's own CPU time and
// the etcd members' CPU time are measured around each run, so the report can show that the load
// generator was not the bottleneck (it used a small share of the CPU the servers used).
//
// Benchmarks only. Requires /usr/bin/etcd and /usr/bin/wrk (apt-get install etcd-server wrk);
// `etcdAvailable()` says whether they are there so the caller can print why it skipped.

import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort } from './cluster_process.js';

export interface PeerRun {
  readonly concurrency: number;
  readonly requests: number;
  readonly errors: number;
  readonly seconds: number;
  readonly perSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly p999Ms: number;
  /** CPU seconds the load generator used, and the etcd members together. */
  readonly loaderCpuSeconds: number;
  readonly serverCpuSeconds: number;
}

const etcdBin = '/usr/bin/etcd';
const wrkBin = '/usr/bin/wrk';
const clockTicksPerSecond = 100; // USER_HZ on Linux, the unit of /proc/<pid>/stat times.

export function etcdAvailable(): string | null {
  if (!existsSync(etcdBin)) return 'etcd is not installed (apt-get install etcd-server)';
  if (!existsSync(wrkBin)) return 'wrk is not installed (apt-get install wrk)';
  return null;
}

/** utime + stime of a process, in seconds (0 once it is gone). */
function cpuSecondsOf(pid: number | undefined): number {
  if (pid === undefined) return 0;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / clockTicksPerSecond;
  } catch {
    return 0;
  }
}

export class EtcdCluster {
  private constructor(
    private readonly members: readonly ChildProcess[],
    readonly clientUrls: readonly string[],
  ) {}

  static async start(root: string, size = 3): Promise<EtcdCluster> {
    const ports: number[] = [];
    while (ports.length < size * 2) {
      const port = await freePort();
      if (!ports.includes(port)) ports.push(port);
    }
    const clientUrls = ports.slice(0, size).map((port) => `http://127.0.0.1:${port}`);
    const peerUrls = ports.slice(size).map((port) => `http://127.0.0.1:${port}`);
    const initial = peerUrls.map((url, index) => `m${index}=${url}`).join(',');
    const members = clientUrls.map((clientUrl, index) =>
      spawn(
        etcdBin,
        [
          ...['--name', `m${index}`, '--data-dir', join(root, `etcd-${index}`)],
          ...['--listen-client-urls', clientUrl, '--advertise-client-urls', clientUrl],
          ...['--listen-peer-urls', peerUrls[index] ?? '', '--initial-advertise-peer-urls'],
          ...[peerUrls[index] ?? '', '--initial-cluster', initial],
          ...['--initial-cluster-state', 'new', '--log-level', 'error'],
        ],
        { stdio: ['ignore', 'ignore', 'ignore'] },
      ),
    );
    const cluster = new EtcdCluster(members, clientUrls);
    await cluster.waitForLeader();
    return cluster;
  }

  /** The client URL of the current leader, once one is elected and a put succeeds. */
  async waitForLeader(timeoutMs = 30_000): Promise<string> {
    const deadline = performance.now() + timeoutMs;
    while (performance.now() < deadline) {
      for (const url of this.clientUrls) {
        try {
          const status = await post(url, '/v3/maintenance/status', {});
          const header = status['header'] as { member_id?: string } | undefined;
          if (status['leader'] !== undefined && status['leader'] === header?.member_id) {
            await post(url, '/v3/kv/put', { key: 'cmVhZHk=', value: 'MQ==' });
            return url;
          }
        } catch {
          // Not up yet.
        }
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new Error(`etcd elected no leader within ${timeoutMs} ms`);
  }

  /** One wrk run of `seconds` with `concurrency` connections against the leader. */
  async run(concurrency: number, seconds: number): Promise<PeerRun> {
    const leader = await this.waitForLeader();
    const serverCpuBefore = this.members.reduce((sum, m) => sum + cpuSecondsOf(m.pid), 0);
    const threads = Math.min(2, concurrency);
    const script = join(import.meta.dirname, 'etcd_put.lua');
    // bash's `time` reports wrk's own user + system CPU seconds on stderr.
    const command =
      `TIMEFORMAT='%U %S'; time ${wrkBin} -t${threads} -c${concurrency} -d${seconds}s ` +
      `--timeout 10s -s '${script}' '${leader}/v3/kv/put'`;
    const result = spawnSync('bash', ['-c', command], { encoding: 'utf8' });
    const serverCpuSeconds =
      this.members.reduce((sum, m) => sum + cpuSecondsOf(m.pid), 0) - serverCpuBefore;
    const line = result.stdout.trim().split('\n').at(-1) ?? '';
    if (result.status !== 0 || !line.startsWith('{')) {
      throw new Error(`wrk failed (${String(result.status)}): ${result.stdout}${result.stderr}`);
    }
    const parsed = JSON.parse(line) as Record<string, number>;
    const [user, system] = (result.stderr.trim().split('\n').at(-1) ?? '0 0').split(' ');
    const runSeconds = (parsed['duration_us'] ?? 0) / 1e6;
    const requests = parsed['requests'] ?? 0;
    return {
      concurrency,
      requests,
      errors: parsed['errors'] ?? 0,
      seconds: runSeconds,
      perSecond: requests / runSeconds,
      p50Ms: (parsed['p50_us'] ?? 0) / 1000,
      p99Ms: (parsed['p99_us'] ?? 0) / 1000,
      p999Ms: (parsed['p999_us'] ?? 0) / 1000,
      loaderCpuSeconds: Number(user) + Number(system),
      serverCpuSeconds,
    };
  }

  async stop(): Promise<void> {
    await Promise.all(
      this.members.map(
        (member) =>
          new Promise<void>((resolve) => {
            if (member.exitCode !== null || member.signalCode !== null) return resolve();
            member.once('exit', () => resolve());
            member.kill('SIGTERM');
          }),
      ),
    );
  }
}

async function post(
  url: string,
  path: string,
  body: Record<string, unknown>,
): Promise<Record<string, unknown>> {
  const response = await fetch(`${url}${path}`, {
    method: 'POST',
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(2_000),
  });
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  return (await response.json()) as Record<string, unknown>;
}
