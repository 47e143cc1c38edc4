// Samples the process' resource use on a timer (every second by default, unref'd so it never
// keeps the process alive) into the vsr_* resource gauges and
// kimberlite_storage_disk_usage_percent:
//   vsr_memory_used_bytes                    process.memoryUsage().rss
//   vsr_cpu_utilization_percent              process.cpuUsage() (user + system) over wall time
//   vsr_disk_iops                            /proc/self/io syscr + syscw, per second
//   vsr_disk_bandwidth_bytes_per_second      /proc/self/io read_bytes + write_bytes, per second
//   vsr_network_bandwidth_bytes_per_second   the node's byte counter (replica frames and client
//                                            sockets), per second
//   kimberlite_storage_disk_usage_percent    fs.statfs of the data directory (every 5th sample)
// Where /proc/self/io does not exist (not Linux) or cannot be read, the disk gauges are NaN, not 0:
// an unknown is not an idle disk. Rates need two samples; until then they stay at 0.
//
// Invariants: at most one statfs is in flight; a failed sample leaves the previous values and
// never throws out of the timer; stop() clears the timer.

import { readFileSync, statfs } from 'node:fs';
import type { Metrics } from './metrics.js';

export interface ResourceSamplerOptions {
  readonly metrics: Metrics;
  /** The data directory, whose filesystem usage is reported. */
  readonly dataDir: string;
  /** Bytes sent and received so far by the node (monotonic). */
  readonly networkBytes: () => number;
  /** Called after each sample with the seconds since the previous one (other rates). */
  readonly onSample?: (seconds: number) => void;
  readonly intervalSeconds?: number;
  /** Where to read process I/O counters (tests point it elsewhere). */
  readonly procIoPath?: string;
}

/** Samples between two statfs calls of the data directory. */
export const diskUsageSampleEvery = 5;

export interface ProcIo {
  readonly syscalls: number;
  readonly storageBytes: number;
}

/** Parses /proc/self/io; null when a field is missing. */
export function parseProcIo(text: string): ProcIo | null {
  const fields = new Map<string, number>();
  for (const line of text.split('\n')) {
    const match = /^(\w+):\s+(\d+)$/.exec(line.trim());
    if (match !== null) fields.set(match[1] ?? '', Number(match[2]));
  }
  const syscr = fields.get('syscr');
  const syscw = fields.get('syscw');
  const readBytes = fields.get('read_bytes');
  const writeBytes = fields.get('write_bytes');
  if (syscr === undefined || syscw === undefined) return null;
  if (readBytes === undefined || writeBytes === undefined) return null;
  return { syscalls: syscr + syscw, storageBytes: readBytes + writeBytes };
}

/** The used share of a filesystem as `df` computes it (space reserved for root excluded). */
export function usedPercent(stats: { blocks: number; bfree: number; bavail: number }): number {
  const used = stats.blocks - stats.bfree;
  const usable = used + stats.bavail;
  return usable <= 0 ? 0 : (used / usable) * 100;
}

interface Previous {
  readonly atMs: number;
  readonly cpuUs: number;
  readonly io: ProcIo | null;
  readonly networkBytes: number;
}

export class ResourceSampler {
  private timer: NodeJS.Timeout | null = null;
  private previous: Previous | null = null;
  private sampleCount = 0;
  private statfsInflight = false;

  constructor(private readonly options: ResourceSamplerOptions) {}

  start(): void {
    if (this.timer !== null) return;
    this.sample();
    const intervalMs = (this.options.intervalSeconds ?? 1) * 1000;
    this.timer = setInterval(() => this.sample(), intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  /** Takes one sample now (the timer calls this; tests may too). */
  sample(): void {
    const vsr = this.options.metrics.vsr;
    const atMs = performance.now();
    const cpu = process.cpuUsage();
    const current: Previous = {
      atMs,
      cpuUs: cpu.user + cpu.system,
      io: this.readIo(),
      networkBytes: this.options.networkBytes(),
    };
    vsr.memoryUsedBytes.set(process.memoryUsage.rss());
    const previous = this.previous;
    this.previous = current;
    if (this.sampleCount % diskUsageSampleEvery === 0) this.sampleDiskUsage();
    this.sampleCount += 1;
    if (previous === null) return;
    const seconds = (atMs - previous.atMs) / 1000;
    if (seconds <= 0) return;
    vsr.cpuUtilizationPercent.set(((current.cpuUs - previous.cpuUs) / 1e6 / seconds) * 100);
    const networkRate = (current.networkBytes - previous.networkBytes) / seconds;
    vsr.networkBandwidthBytesPerSecond.set(Math.max(0, networkRate));
    if (current.io === null || previous.io === null) {
      vsr.diskIops.set(NaN);
      vsr.diskBandwidthBytesPerSecond.set(NaN);
    } else {
      vsr.diskIops.set((current.io.syscalls - previous.io.syscalls) / seconds);
      vsr.diskBandwidthBytesPerSecond.set(
        (current.io.storageBytes - previous.io.storageBytes) / seconds,
      );
    }
    this.options.onSample?.(seconds);
  }

  private readIo(): ProcIo | null {
    try {
      return parseProcIo(readFileSync(this.options.procIoPath ?? '/proc/self/io', 'utf8'));
    } catch {
      return null;
    }
  }

  private sampleDiskUsage(): void {
    if (this.statfsInflight) return;
    this.statfsInflight = true;
    statfs(this.options.dataDir, (error, stats) => {
      this.statfsInflight = false;
      const usage = this.options.metrics.storageDiskUsagePercent;
      usage.set(error === null ? usedPercent(stats) : NaN);
    });
  }
}
