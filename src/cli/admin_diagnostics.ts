// `kimberlite-admin diagnostics --output FILE.tar.gz` (spec 002 "Collect Diagnostic Bundle";
// docs/diagnostics.md): one .tar.gz to attach to a bug report, holding under
// kimberlite-diagnostics/:
//   manifest.json        when, with which options, every member, what could not be collected
//   config.json          the effective configuration (flags none; KMB_* env; --config or
//                        KMB_CONFIG file; defaults) with each value's origin; secret-looking keys
//                        are redacted (there are none today)
//   system.json          os, cpus, memory, load, uptimes, node version, free disk of the data dir
//   replicas.json        per ops address: reachable or the error, and its /status
//   status/N_HOST_PORT.json, metrics/N_HOST_PORT.prom, logs/N_HOST_PORT.log
//                        each replica's /status, /metrics and /debug/logs (its recent log ring)
//   logs/log-file.log    the last lines of --log-file, when given
// Replicas are the ops addresses in --metrics-addresses (default: the config's
// server.metrics_address). An unreachable replica is noted, never fatal: a bundle is most needed
// when the cluster is unwell. Exit 0 once the bundle is written, 2 for a usage mistake.
// Bounds: each HTTP answer at most responseSizeBytesMax and diagnosticsFetchTimeoutMs; the log
// file's last logFileTailBytesMax bytes.

import type { Command } from 'commander';
import { open, rename, statfs, writeFile } from 'node:fs/promises';
import { arch, cpus, freemem, hostname, loadavg, platform, release, totalmem } from 'node:os';
import { type as osType, uptime as osUptime } from 'node:os';
import { loadConfig, parseHostPort } from '../node/config.js';
import type { CliIo } from './cli_io.js';
import { UsageError, exitCodes, write, writeJson } from './cli_io.js';
import { tarGzip } from './tar_writer.js';
import type { TarEntry } from './tar_writer.js';

export const diagnosticsLimits = {
  fetchTimeoutMs: 5_000,
  responseSizeBytesMax: 16 * 1024 * 1024,
  logFileTailBytesMax: 1024 * 1024,
  addressCountMax: 16,
} as const;

const root = 'kimberlite-diagnostics';
const secretKeyPattern = /secret|token|password|passphrase|private|credential/i;

interface DiagnosticsFlags {
  output: string;
  metricsAddresses?: string;
  config?: string;
  dataDir?: string;
  logFile?: string;
  json?: boolean;
}

interface Bundle {
  readonly entries: TarEntry[];
  readonly notes: string[];
  readonly nowMs: number;
}

function add(bundle: Bundle, name: string, data: string | Uint8Array): void {
  const bytes = typeof data === 'string' ? Buffer.from(data) : data;
  bundle.entries.push({ name: `${root}/${name}`, data: bytes, mtimeMs: bundle.nowMs });
}

function json(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function redact(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(redact);
  if (value === null || typeof value !== 'object') return value;
  const entries = Object.entries(value as Record<string, unknown>).map(([key, item]) => [
    key,
    secretKeyPattern.test(key) && item !== null ? '[redacted]' : redact(item),
  ]);
  return Object.fromEntries(entries);
}

/** The effective configuration, or null (with a note) when it does not load. */
function collectConfig(bundle: Bundle, io: CliIo, flags: DiagnosticsFlags) {
  try {
    const loaded = loadConfig({
      flags: flags.dataDir === undefined ? {} : { 'data-dir': flags.dataDir },
      env: io.env,
      ...(flags.config === undefined ? {} : { configPath: flags.config }),
    });
    add(bundle, 'config.json', json({ config: redact(loaded.config), origins: loaded.origins }));
    return loaded.config;
  } catch (error) {
    bundle.notes.push(`config: ${messageOf(error)}`);
    add(bundle, 'config.json', json({ error: messageOf(error) }));
    return null;
  }
}

async function readBounded(response: Response): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let sizeBytes = 0;
  for await (const chunk of response.body ?? []) {
    sizeBytes += (chunk as Uint8Array).length;
    if (sizeBytes > diagnosticsLimits.responseSizeBytesMax) {
      throw new Error(`answer exceeds ${diagnosticsLimits.responseSizeBytesMax} bytes`);
    }
    chunks.push(Buffer.from(chunk as Uint8Array));
  }
  return Buffer.concat(chunks);
}

async function fetchPath(address: string, path: string): Promise<Buffer> {
  const signal = AbortSignal.timeout(diagnosticsLimits.fetchTimeoutMs);
  const response = await fetch(`http://${address}${path}`, { signal });
  const body = await readBounded(response);
  if (response.status !== 200 && path !== '/status') {
    throw new Error(`${path} answered ${response.status}`);
  }
  return body;
}

/** /status, /metrics and /debug/logs of one replica; what fails is noted. */
async function collectReplica(bundle: Bundle, index: number, address: string) {
  const base = `${index}_${address.replace(/[^0-9A-Za-z.-]/g, '_')}`;
  const summary: Record<string, unknown> = { index, address, reachable: false };
  try {
    const status = await fetchPath(address, '/status');
    summary['reachable'] = true;
    summary['status'] = JSON.parse(status.toString()) as unknown;
    add(bundle, `status/${base}.json`, status);
  } catch (error) {
    summary['error'] = messageOf(error);
    bundle.notes.push(`replica ${index} (${address}) unreachable: ${messageOf(error)}`);
    return summary;
  }
  for (const [path, name] of [
    ['/metrics', `metrics/${base}.prom`],
    ['/debug/logs', `logs/${base}.log`],
  ] as const) {
    try {
      add(bundle, name, await fetchPath(address, path));
    } catch (error) {
      bundle.notes.push(`replica ${index} (${address}) ${path}: ${messageOf(error)}`);
    }
  }
  return summary;
}

async function diskOf(dataDir: string | null): Promise<Record<string, unknown>> {
  if (dataDir === null) return { data_dir: null };
  try {
    const fs = await statfs(dataDir);
    const blockBytes = Number(fs.bsize);
    return {
      data_dir: dataDir,
      free_bytes: Number(fs.bavail) * blockBytes,
      total_bytes: Number(fs.blocks) * blockBytes,
    };
  } catch (error) {
    return { data_dir: dataDir, error: messageOf(error) };
  }
}

async function collectSystem(bundle: Bundle, dataDir: string | null): Promise<void> {
  const cpuList = cpus();
  add(
    bundle,
    'system.json',
    json({
      hostname: hostname(),
      os: { type: osType(), platform: platform(), release: release(), arch: arch() },
      cpus: { count: cpuList.length, model: cpuList[0]?.model ?? null },
      memory: { total_bytes: totalmem(), free_bytes: freemem() },
      load_average: loadavg(),
      uptime_seconds: { system: osUptime(), tool_process: process.uptime() },
      node_version: process.version,
      disk: await diskOf(dataDir),
    }),
  );
}

async function collectLogFile(bundle: Bundle, path: string): Promise<void> {
  try {
    const handle = await open(path, 'r');
    try {
      const { size } = await handle.stat();
      const length = Math.min(size, diagnosticsLimits.logFileTailBytesMax);
      const buffer = Buffer.alloc(length);
      await handle.read(buffer, 0, length, size - length);
      const text = buffer.toString('utf8');
      const firstBreak = size > length ? text.indexOf('\n') + 1 : 0;
      add(bundle, 'logs/log-file.log', text.slice(firstBreak));
    } finally {
      await handle.close();
    }
  } catch (error) {
    bundle.notes.push(`--log-file ${path}: ${messageOf(error)}`);
  }
}

function addressesOf(flags: DiagnosticsFlags, configAddress: string | null): string[] {
  const text = flags.metricsAddresses ?? configAddress ?? '127.0.0.1:9090';
  const list = text
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item !== '');
  if (list.length === 0 || list.length > diagnosticsLimits.addressCountMax) {
    const max = diagnosticsLimits.addressCountMax;
    throw new UsageError(`--metrics-addresses needs 1..${max} host:port addresses`);
  }
  for (const address of list) {
    try {
      parseHostPort(address);
    } catch (error) {
      throw new UsageError(`--metrics-addresses: ${messageOf(error)}`);
    }
  }
  return list;
}

async function diagnostics(io: CliIo, flags: DiagnosticsFlags): Promise<number> {
  const bundle: Bundle = { entries: [], notes: [], nowMs: Date.now() };
  const config = collectConfig(bundle, io, flags);
  const addresses = addressesOf(flags, config?.server.metrics_address ?? null);
  const replicas = await Promise.all(addresses.map((a, i) => collectReplica(bundle, i, a)));
  add(bundle, 'replicas.json', json(replicas));
  await collectSystem(bundle, flags.dataDir ?? config?.storage.data_dir ?? null);
  if (flags.logFile !== undefined) await collectLogFile(bundle, flags.logFile);
  const members = [...bundle.entries.map((e) => e.name), `${root}/manifest.json`];
  const createdAt = new Date(bundle.nowMs).toISOString();
  add(
    bundle,
    'manifest.json',
    json({ created_at: createdAt, options: flags, members, notes: bundle.notes }),
  );
  await writeFile(`${flags.output}.tmp`, await tarGzip(bundle.entries));
  await rename(`${flags.output}.tmp`, flags.output);
  const reachable = replicas.filter((r) => r['reachable'] === true).length;
  const result = { output: flags.output, members, reachable, replicas: replicas.length };
  if (flags.json === true) {
    await writeJson(io, { ...result, notes: bundle.notes });
    return exitCodes.ok;
  }
  const lines = [
    `Wrote ${flags.output}: ${members.length} files; ${reachable}/${replicas.length} replicas ` +
      'reachable',
    ...bundle.notes.map((note) => `  note: ${note}`),
  ];
  await write(io.stdout, `${lines.join('\n')}\n`);
  return exitCodes.ok;
}

/** Adds `diagnostics` to the kimberlite-admin program. */
export function addDiagnosticsCommand(program: Command, io: CliIo, exit: { code: number }): void {
  program
    .command('diagnostics')
    .description('write a .tar.gz bundle: config, replica status, metrics, logs, system info')
    .requiredOption('--output <file>', 'the bundle to write (FILE.tar.gz)')
    .option('--metrics-addresses <list>', "every replica's ops host:port, comma-separated")
    .option('--config <file>', 'the config.toml the servers run with (also env KMB_CONFIG)')
    .option('--data-dir <dir>', 'the data directory whose disk to report')
    .option('--log-file <path>', 'a server log file to include the last lines of')
    .option('--json', 'print a one-line JSON summary instead of text')
    .action(async (flags: DiagnosticsFlags) => {
      exit.code = await diagnostics(io, flags);
    });
}
