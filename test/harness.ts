// The harness of the real-process integration tests: it starts kimberlite-server processes from
// bin/ (the compiled dist/, so `npm run build` must have run), reads their JSON log lines from
// stdout to learn the ports they bound, kills them with SIGKILL or stops them with SIGTERM,
// restarts them on the same data directory, runs the CLI and admin binaries, and fetches the ops
// HTTP endpoints. Everything a test starts is registered with its Harness and torn down in
// t.after(), pass or fail: processes are killed by their own pid, SDK clients closed, proxies
// closed, temp directories removed.
//
// Every line a server writes (stdout, and stderr once it has started) must be a log line in the
// monitoring spec's JSON shape (checkLogShape): a test that made a server write anything else
// fails in its cleanup, naming the lines.
//
// Children get a clean environment (no KMB_*, RUST_LOG* or node:test variables from the caller)
// and, unless a test says otherwise, a fresh temp directory as their working directory, so no
// stray config.toml or ./data can leak in.

import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestContext } from 'node:test';
import { serverNodeFlags } from '../src/cli/node_flags.js';
import { connect } from '../src/client/client.js';
import type { Client, ConnectOptions } from '../src/client/client.js';
import { FaultProxy } from '../src/testing/fault_proxy.js';
import type { FaultProxyOptions } from '../src/testing/fault_proxy.js';

export const repoRoot = fileURLToPath(new URL('..', import.meta.url));
export const serverBin = join(repoRoot, 'bin', 'kimberlite-server.js');
export const cliBin = join(repoRoot, 'bin', 'kimberlite-cli.js');
export const adminBin = join(repoRoot, 'bin', 'kimberlite-admin.js');

/** How long a server may take from spawn to "Node ready" before the test fails. */
export const readyTimeoutMsDefault = 20_000;
/** How long a process may take to exit after a signal, or a CLI run to finish. */
export const exitTimeoutMsDefault = 20_000;
/** Captured output kept per stream; beyond it the oldest text is dropped. */
const capturedCharsMax = 4 * 1024 * 1024;

/** One log line of the server, as the monitoring spec shapes it. */
export interface LogLine {
  readonly timestamp: string;
  readonly level: string;
  readonly target: string;
  readonly message: string;
  readonly fields: Readonly<Record<string, unknown>>;
}

export interface ExitStatus {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

export interface RunResult extends ExitStatus {
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Every child still running, so that if the test process itself ends abruptly (a runner
 * timeout, an uncaught error) no server outlives it: each is killed by its own pid on exit.
 */
const liveChildren = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of liveChildren) child.kill('SIGKILL');
});

/** The environment children run with: the caller's, minus anything that configures them. */
export function cleanEnv(extra: Readonly<Record<string, string>> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (key.startsWith('KMB_') || key.startsWith('RUST_LOG') || key.startsWith('NODE_TEST')) {
      continue;
    }
    env[key] = value;
  }
  return { ...env, ...extra };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

const logLevelsUpper = new Set(['ERROR', 'WARN', 'INFO', 'DEBUG', 'TRACE']);
const isoTimestamp = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;
const logKeys = 'timestamp,level,target,message,fields';

/**
 * Why `text` is not a log line in the spec's JSON shape (exactly the keys timestamp, level,
 * target, message, fields, in that order, with an ISO timestamp, an upper-case level, a
 * non-empty target, a string message and an object of fields), or null when it is one.
 */
export function logShapeProblem(text: string): string | null {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return 'not JSON';
  }
  if (!isRecord(value)) return 'not a JSON object';
  if (Object.keys(value).join(',') !== logKeys) return `keys are not ${logKeys}`;
  const { timestamp, level, target, message, fields } = value;
  if (typeof timestamp !== 'string' || !isoTimestamp.test(timestamp)) return 'bad timestamp';
  if (typeof level !== 'string' || !logLevelsUpper.has(level)) return 'bad level';
  if (typeof target !== 'string' || target === '') return 'bad target';
  if (typeof message !== 'string') return 'message is not a string';
  if (!isRecord(fields)) return 'fields is not an object';
  return null;
}

/** Parses one stdout line as a log line, or null when it is not one. */
export function parseLogLine(text: string): LogLine | null {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  if (!isRecord(value) || typeof value['message'] !== 'string') return null;
  const fields = isRecord(value['fields']) ? value['fields'] : {};
  return {
    timestamp: String(value['timestamp'] ?? ''),
    level: String(value['level'] ?? ''),
    target: String(value['target'] ?? ''),
    message: value['message'],
    fields,
  };
}

function clip(text: string): string {
  return text.length > capturedCharsMax ? text.slice(text.length - capturedCharsMax) : text;
}

function tail(text: string, charsMax = 4000): string {
  return text.length > charsMax ? `…${text.slice(text.length - charsMax)}` : text;
}

/** A child process whose output is captured while it runs. */
class Captured {
  stdout = '';
  stderr = '';
  readonly lines: LogLine[] = [];
  readonly exited: Promise<ExitStatus>;
  private status: ExitStatus | null = null;
  private partialLine = '';
  private partialErrLine = '';
  private readonly lineWaiters = new Set<() => void>();
  /** Lines that are not spec-shaped log lines (the first few), when checked. */
  readonly badLines: string[] = [];

  /**
   * `checkLogShape`: 'all' checks stdout and stderr, 'stdout' only stdout (a server expected
   * to refuse to start writes its exit message to stderr), 'none' checks nothing (CLI tools).
   */
  constructor(
    readonly child: ChildProcess,
    private readonly checkLogShape: 'all' | 'stdout' | 'none' = 'none',
  ) {
    child.stdout?.setEncoding('utf8');
    child.stderr?.setEncoding('utf8');
    child.stdout?.on('data', (text: string) => this.onStdout(text));
    child.stderr?.on('data', (text: string) => {
      this.stderr = clip(this.stderr + text);
      if (this.checkLogShape !== 'all') return;
      const parts = (this.partialErrLine + text).split('\n');
      this.partialErrLine = parts.pop() ?? '';
      for (const part of parts) this.checkLine('stderr', part);
    });
    this.exited = new Promise((resolve) => {
      // 'close', not 'exit': it comes after stdout and stderr are drained, so output is whole.
      child.on('close', (code, signal) => {
        this.checkLine('stdout', this.partialLine);
        if (this.checkLogShape === 'all') this.checkLine('stderr', this.partialErrLine);
        this.status = { code, signal };
        this.wake();
        resolve(this.status);
      });
      child.on('error', (error) => {
        this.stderr += `\n[spawn error] ${error.message}`;
        this.status = { code: null, signal: null };
        this.wake();
        resolve(this.status);
      });
    });
  }

  get exitStatus(): ExitStatus | null {
    return this.status;
  }

  get running(): boolean {
    return this.status === null && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Resolves when a line matching `match` has been logged (also one logged before the call). */
  async waitForLine(
    match: (line: LogLine) => boolean,
    timeoutMs: number,
    what: string,
  ): Promise<LogLine> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.lines.find(match);
      if (found !== undefined) return found;
      if (this.status !== null) {
        throw new Error(`process exited (${describeExit(this.status)}) before ${what}`);
      }
      const remainingMs = deadline - Date.now();
      if (remainingMs <= 0) throw new Error(`no ${what} within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const wake = (): void => {
          clearTimeout(timer);
          this.lineWaiters.delete(wake);
          resolve();
        };
        const timer = setTimeout(wake, remainingMs);
        this.lineWaiters.add(wake);
      });
    }
  }

  describe(): string {
    const status = this.status === null ? 'still running' : describeExit(this.status);
    const stdout = tail(this.stdout);
    return `(${status})\n--- stdout ---\n${stdout}\n--- stderr ---\n${tail(this.stderr)}`;
  }

  private onStdout(text: string): void {
    this.stdout = clip(this.stdout + text);
    const parts = (this.partialLine + text).split('\n');
    this.partialLine = parts.pop() ?? '';
    for (const part of parts) {
      const line = parseLogLine(part);
      if (line !== null) this.lines.push(line);
      this.checkLine('stdout', part);
    }
    this.wake();
  }

  private checkLine(stream: string, text: string): void {
    if (this.checkLogShape === 'none' || text === '' || this.badLines.length >= 10) return;
    const problem = logShapeProblem(text);
    if (problem !== null) this.badLines.push(`${stream} (${problem}): ${text.slice(0, 300)}`);
  }

  private wake(): void {
    const waiters = [...this.lineWaiters];
    this.lineWaiters.clear();
    for (const wake of waiters) wake();
  }
}

export function describeExit(status: ExitStatus): string {
  return status.signal !== null ? `signal ${status.signal}` : `exit code ${status.code}`;
}

async function withTimeout<T>(work: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`${what}: no result within ${timeoutMs} ms`)),
      timeoutMs,
    );
  });
  try {
    return await Promise.race([work, expired]);
  } finally {
    clearTimeout(timer);
  }
}

export interface ServerOptions {
  /** --data-dir; without it the server uses its default, ./data in its working directory. */
  readonly dataDir?: string;
  /** Client protocol address; default 127.0.0.1:0 (a free port). */
  readonly address?: string;
  /** Ops HTTP address; default 127.0.0.1:0. */
  readonly metricsAddress?: string;
  /** More flags, after the ones above. */
  readonly args?: readonly string[];
  /** More environment variables (KMB_* for instance). */
  readonly env?: Readonly<Record<string, string>>;
  /** Working directory; default a fresh temp directory. */
  readonly cwd?: string;
  readonly readyTimeoutMs?: number;
  /** false: the test makes the server write other lines on purpose (e.g. text format). */
  readonly logShapeCheck?: boolean;
}

/** A running kimberlite-server process. */
export class ServerProcess {
  /** The client protocol address it bound ("127.0.0.1:PORT"). */
  readonly address: string;
  /** The ops HTTP address it bound. */
  readonly metricsAddress: string;

  constructor(
    private readonly captured: Captured,
    readonly options: ServerOptions,
    ready: LogLine,
  ) {
    this.address = String(ready.fields['address']);
    this.metricsAddress = String(ready.fields['metrics_address']);
  }

  get pid(): number {
    const pid = this.captured.child.pid;
    if (pid === undefined) throw new Error('server has no pid');
    return pid;
  }

  get port(): number {
    return Number(this.address.slice(this.address.lastIndexOf(':') + 1));
  }

  get lines(): readonly LogLine[] {
    return this.captured.lines;
  }

  get stdout(): string {
    return this.captured.stdout;
  }

  get stderr(): string {
    return this.captured.stderr;
  }

  get running(): boolean {
    return this.captured.running;
  }

  get exited(): Promise<ExitStatus> {
    return this.captured.exited;
  }

  /** The ops HTTP base URL. */
  get opsUrl(): string {
    return `http://${this.metricsAddress}`;
  }

  waitForLine(
    match: (line: LogLine) => boolean,
    timeoutMs = readyTimeoutMsDefault,
  ): Promise<LogLine> {
    return this.captured.waitForLine(match, timeoutMs, 'the expected log line');
  }

  /** Sends a signal and waits for the process to exit. */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<ExitStatus> {
    if (this.running) this.captured.child.kill(signal);
    const what = `server pid ${this.captured.child.pid} after ${signal}`;
    return withTimeout(this.captured.exited, exitTimeoutMsDefault, what);
  }

  /** Graceful stop with SIGTERM; resolves with how it exited. */
  stop(): Promise<ExitStatus> {
    return this.kill('SIGTERM');
  }

  describe(): string {
    return `server ${this.address} ${this.captured.describe()}`;
  }
}

/** Per-test resources, all released in t.after(). */
export class Harness {
  private readonly processes = new Set<Captured>();
  private readonly clients = new Set<Client>();
  private readonly proxies = new Set<FaultProxy>();
  private readonly dirs = new Set<string>();
  /** Every server process started, for the log-shape check at cleanup. */
  private readonly servers: Captured[] = [];

  constructor(t: TestContext) {
    t.after(() => this.cleanup());
  }

  /** A fresh temp directory, removed after the test. */
  async tempDir(prefix = 'kmb-test-'): Promise<string> {
    const dir = await mkdtemp(join(tmpdir(), prefix));
    this.dirs.add(dir);
    return dir;
  }

  /** Spawns a server and waits for "Node ready"; on failure it is killed and its output shown. */
  async startServer(given: ServerOptions): Promise<ServerProcess> {
    // The working directory is fixed now, so that a restart finds a default ./data again.
    const options = { ...given, cwd: given.cwd ?? (await this.tempDir('kmb-cwd-')) };
    const captured = this.spawnServer(options, 'all');
    const timeoutMs = options.readyTimeoutMs ?? readyTimeoutMsDefault;
    try {
      const ready = await captured.waitForLine(
        (line) => line.message === 'Node ready',
        timeoutMs,
        'the "Node ready" log line',
      );
      return new ServerProcess(captured, options, ready);
    } catch (error) {
      if (captured.running) captured.child.kill('SIGKILL');
      await captured.exited;
      const reason = error instanceof Error ? error.message : String(error);
      throw new Error(`server did not become ready: ${reason}\n${captured.describe()}`);
    }
  }

  /** Starts a server again on the same data dir and client address (a restart). */
  restart(previous: ServerProcess, overrides: Partial<ServerOptions> = {}): Promise<ServerProcess> {
    return this.startServer({ ...previous.options, address: previous.address, ...overrides });
  }

  /** Runs a server that is expected to exit by itself (e.g. refusing to start). */
  async runServerToExit(given: ServerOptions): Promise<RunResult> {
    const options = { ...given, cwd: given.cwd ?? (await this.tempDir('kmb-cwd-')) };
    const captured = this.spawnServer(options, 'stdout');
    const timeoutMs = options.readyTimeoutMs ?? readyTimeoutMsDefault;
    const exitOrReady = Promise.race([
      captured.exited,
      captured
        .waitForLine((line) => line.message === 'Node ready', timeoutMs, 'exit')
        .then(() => null),
    ]);
    let status: ExitStatus | null;
    try {
      status = await exitOrReady;
    } catch {
      status = captured.exitStatus;
    }
    if (status === null) {
      captured.child.kill('SIGKILL');
      await captured.exited;
      throw new Error(`server was expected to exit but kept running\n${captured.describe()}`);
    }
    return { ...status, stdout: captured.stdout, stderr: captured.stderr };
  }

  /** Runs kimberlite-cli with args; resolves with its exit status and output. */
  runCli(args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
    return this.run(cliBin, args, options);
  }

  /** Runs kimberlite-admin with args; resolves with its exit status and output. */
  runAdmin(args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
    return this.run(adminBin, args, options);
  }

  /** An SDK client, closed after the test. */
  async connect(options: ConnectOptions): Promise<Client> {
    const client = await connect(options);
    this.clients.add(client);
    return client;
  }

  /** A fault proxy, closed after the test. */
  async proxy(options: FaultProxyOptions): Promise<FaultProxy> {
    const proxy = await FaultProxy.start(options);
    this.proxies.add(proxy);
    return proxy;
  }

  private spawnServer(
    options: ServerOptions & { readonly cwd: string },
    checkLogShape: 'all' | 'stdout',
  ): Captured {
    const args = [
      ...serverNodeFlags,
      serverBin,
      '--address',
      options.address ?? '127.0.0.1:0',
      '--metrics-address',
      options.metricsAddress ?? '127.0.0.1:0',
      ...(options.dataDir === undefined ? [] : ['--data-dir', options.dataDir]),
      ...(options.args ?? []),
    ];
    const check = options.logShapeCheck === false ? 'none' : checkLogShape;
    const captured = this.spawn(args, options.cwd, cleanEnv(options.env), check);
    this.servers.push(captured);
    return captured;
  }

  private spawn(
    args: readonly string[],
    cwd: string,
    env: NodeJS.ProcessEnv,
    checkLogShape: 'all' | 'stdout' | 'none' = 'none',
  ): Captured {
    const child = spawn(process.execPath, [...args], {
      cwd,
      env,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const captured = new Captured(child, checkLogShape);
    this.processes.add(captured);
    liveChildren.add(child);
    void captured.exited.then(() => {
      this.processes.delete(captured);
      liveChildren.delete(child);
    });
    return captured;
  }

  private async run(bin: string, args: readonly string[], options: RunOptions): Promise<RunResult> {
    const cwd = options.cwd ?? (await this.tempDir('kmb-cwd-'));
    const captured = this.spawn([bin, ...args], cwd, cleanEnv(options.env));
    captured.child.stdin?.end(options.stdin ?? '');
    const timeoutMs = options.timeoutMs ?? exitTimeoutMsDefault;
    try {
      const status = await withTimeout(captured.exited, timeoutMs, `${bin} ${args.join(' ')}`);
      return { ...status, stdout: captured.stdout, stderr: captured.stderr };
    } catch (error) {
      captured.child.kill('SIGKILL');
      await captured.exited;
      const reason = error instanceof Error ? error.message : String(error);
      throw new Error(`${reason}\n${captured.describe()}`);
    }
  }

  private async cleanup(): Promise<void> {
    for (const client of this.clients) await client.close().catch(() => undefined);
    for (const proxy of this.proxies) await proxy.close().catch(() => undefined);
    for (const captured of [...this.processes]) {
      if (captured.running) captured.child.kill('SIGKILL');
      await captured.exited;
    }
    for (const dir of this.dirs) await rm(dir, { recursive: true, force: true });
    const bad = this.servers.flatMap((captured) => captured.badLines);
    if (bad.length > 0) {
      throw new Error(`a server wrote lines that are not JSON log lines:\n${bad.join('\n')}`);
    }
  }
}

export interface RunOptions {
  readonly env?: Readonly<Record<string, string>>;
  readonly cwd?: string;
  readonly stdin?: string;
  readonly timeoutMs?: number;
}

export interface OpsResponse {
  readonly status: number;
  readonly contentType: string;
  readonly text: string;
}

/** GETs an ops endpoint; the connection is not kept alive, so a stopping server is not held. */
export async function fetchOps(server: ServerProcess, path: string): Promise<OpsResponse> {
  const response = await fetch(`${server.opsUrl}${path}`, {
    headers: { connection: 'close' },
    signal: AbortSignal.timeout(10_000),
  });
  return {
    status: response.status,
    contentType: response.headers.get('content-type') ?? '',
    text: await response.text(),
  };
}

/** One sample of the Prometheus text format. */
export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

/** Parses the samples of a Prometheus text exposition (comments skipped). */
export function parseMetrics(text: string): Sample[] {
  const samples: Sample[] = [];
  const pattern = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$/;
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || line.trim() === '') continue;
    const match = pattern.exec(line);
    if (match === null) throw new Error(`not a Prometheus sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const pair of (match[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[pair[1] ?? ''] = pair[2] ?? '';
    }
    samples.push({ name: match[1] ?? '', labels, value: Number(match[3]) });
  }
  return samples;
}

/** The value of the one sample with this name whose labels include `labels`. */
export function sampleValue(
  samples: readonly Sample[],
  name: string,
  labels: Readonly<Record<string, string>> = {},
): number | undefined {
  const found = samples.filter(
    (sample) =>
      sample.name === name &&
      Object.entries(labels).every(([key, value]) => sample.labels[key] === value),
  );
  if (found.length > 1) throw new Error(`${found.length} samples of ${name} match the labels`);
  return found[0]?.value;
}

export const sleep = (ms: number): Promise<void> =>
  new Promise((resolve) => setTimeout(resolve, ms));

/** Runs `work` with a test-level deadline, failing with `what` (never asserting on time). */
export function within<T>(work: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  return withTimeout(work, timeoutMs, what);
}
