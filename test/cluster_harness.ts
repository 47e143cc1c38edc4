// The harness of the multi-process cluster tests (test/cluster_*.test.ts), on top of harness.ts:
//
//   - TestCluster starts N kimberlite-server processes that form one cluster: fixed ports picked
//     free beforehand (replica links need to know each other's address before anyone starts),
//     one data directory each, SIGKILL / SIGTERM / restart of any replica, every replica's own
//     node_status over the client protocol, and waits for a leader or for convergence. With
//     `proxied`, every replica link runs through a fault-injecting proxy (src/testing/
//     fault_proxy.ts), one proxy per directed pair: replica i's --cluster-peers lists its own real
//     address at i and, at j, the proxy i→j that forwards to j's real address. Whichever side of
//     a pair dials, its link crosses a proxy that a test can partition; clients always connect to
//     the replicas' real addresses.
//   - History records what SDK clients did, as call/return events in real-time order, and checks
//     each stream's sub-history with the project's linearizability checker
//     (src/testing/linearizability.ts). An append that failed with a timeout or a lost connection
//     has an unknown outcome: it is recorded as never returning.
//   - Workload runs writer and reader clients against shared streams and records everything in
//     a History; checkAcked() compares a final read with what was acknowledged.
//
// Everything is registered with the Harness, so processes, proxies and clients are torn down in
// t.after() whether the test passes or fails.

import { strict as assert } from 'node:assert';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { KmbError, errorCodes, fetchNodeStatus } from '../src/client/client.js';
import type { Client, ConnectOptions, NodeStatus } from '../src/client/client.js';
import type { FaultProxy } from '../src/testing/fault_proxy.js';
import { checkLinearizable, streamModel } from '../src/testing/linearizability.js';
import type { HistoryOp, StreamInput, StreamOutput } from '../src/testing/linearizability.js';
import { sleep } from './harness.js';
import type { Harness, RunResult, ServerProcess } from './harness.js';

/**
 * A guard against a hung test (a server that never answers must not stall everyone's `npm
 * test`): far above what any cluster test takes, and never a verdict on speed.
 */
export const hangTimeoutMs = 180_000;
/** How long a cluster may take to elect a leader or to converge before a test fails. */
export const clusterWaitMsDefault = 30_000;
/** How often the waits poll the replicas' status. */
const pollIntervalMs = 100;

/** Distinct free loopback ports: all bound at once (so they differ), then released. */
export async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: count }, async () => {
      const server = createServer();
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(0, '127.0.0.1', resolve);
      });
      return server;
    }),
  );
  const ports = servers.map((server) => (server.address() as AddressInfo).port);
  await Promise.all(
    servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve()))),
  );
  return ports;
}

export interface TestClusterOptions {
  readonly size?: number;
  readonly name?: string;
  /** Route every replica link through a fault proxy (see the file comment). */
  readonly proxied?: boolean;
  /** More environment for every server (KMB_* settings). */
  readonly env?: Readonly<Record<string, string>>;
}

/** A replica's verdict from `kimberlite-admin verify --json`, with the fields tests compare. */
export interface VerifyOutcome {
  readonly run: RunResult;
  readonly ok: boolean;
  readonly opMax: number;
  readonly headChecksum: string;
  readonly commit: number | null;
  readonly stateDigest: string;
}

export class TestCluster {
  readonly nodes: Array<ServerProcess | null>;
  /** Each replica's latest process, running or not, for its output in failure messages. */
  private readonly latest: Array<ServerProcess | null>;
  /** The proxy on the link from replica `from` to replica `to` (proxied clusters only). */
  private readonly proxies = new Map<string, FaultProxy>();

  private constructor(
    private readonly h: Harness,
    readonly name: string,
    /** Each replica's real client/replica address. */
    readonly addresses: readonly string[],
    readonly dataDirs: readonly string[],
    private readonly env: Readonly<Record<string, string>>,
  ) {
    this.nodes = addresses.map(() => null);
    this.latest = addresses.map(() => null);
  }

  /** Starts every replica (in parallel) and returns once each has logged "Node ready". */
  static async start(h: Harness, options: TestClusterOptions = {}): Promise<TestCluster> {
    const size = options.size ?? 3;
    const ports = await freePorts(size);
    const addresses = ports.map((port) => `127.0.0.1:${port}`);
    const root = await h.tempDir('kmb-cluster-');
    const dataDirs = addresses.map((_, id) => join(root, `node-${id}`));
    const name = options.name ?? 'test-cluster';
    const cluster = new TestCluster(h, name, addresses, dataDirs, options.env ?? {});
    if (options.proxied === true) await cluster.startProxies();
    await Promise.all(addresses.map((_, id) => cluster.startNode(id)));
    return cluster;
  }

  get size(): number {
    return this.addresses.length;
  }

  get quorum(): number {
    return Math.floor(this.size / 2) + 1;
  }

  private async startProxies(): Promise<void> {
    for (let from = 0; from < this.size; from++) {
      for (let to = 0; to < this.size; to++) {
        if (from === to) continue;
        const [host, port] = splitAddress(this.addresses[to] ?? '');
        this.proxies.set(`${from}->${to}`, await this.h.proxy({ target: { host, port } }));
      }
    }
  }

  /** The --cluster-peers replica `id` is started with. */
  peersOf(id: number): string[] {
    return this.addresses.map((address, peer) => {
      if (peer === id || this.proxies.size === 0) return address;
      const proxy = this.proxies.get(`${id}->${peer}`);
      assert.ok(proxy !== undefined, `proxy ${id}->${peer}`);
      return proxy.address;
    });
  }

  /** The flags of replica `id`. */
  private args(id: number): string[] {
    return [
      '--node-id',
      String(id),
      '--cluster-peers',
      this.peersOf(id).join(','),
      '--cluster-name',
      this.name,
    ];
  }

  /** Starts replica `id` (first start or restart) on its address and data directory. */
  async startNode(id: number): Promise<ServerProcess> {
    assert.equal(this.nodes[id] ?? null, null, `replica ${id} is not running`);
    const server = await this.h.startServer({
      address: this.addresses[id] ?? '',
      dataDir: this.dataDirs[id] ?? '',
      args: this.args(id),
      env: { ...this.env },
    });
    this.nodes[id] = server;
    this.latest[id] = server;
    return server;
  }

  /** The latest process of replica `id` and its output, for failure messages. */
  describe(id: number): string {
    return this.latest[id]?.describe() ?? `replica ${id} never started`;
  }

  node(id: number): ServerProcess {
    const server = this.nodes[id];
    assert.ok(server !== null && server !== undefined, `replica ${id} is running`);
    return server;
  }

  /** SIGKILLs replica `id` (no chance to flush or say goodbye). */
  async kill(id: number): Promise<void> {
    const status = await this.node(id).kill('SIGKILL');
    assert.equal(status.signal, 'SIGKILL', `replica ${id} died of SIGKILL`);
    this.nodes[id] = null;
  }

  /** Stops replica `id` gracefully (SIGTERM) and expects a clean exit. */
  async stop(id: number): Promise<void> {
    const server = this.node(id);
    const status = await server.stop();
    assert.equal(status.code, 0, `replica ${id} stops cleanly\n${server.describe()}`);
    this.nodes[id] = null;
  }

  async restart(id: number): Promise<ServerProcess> {
    return this.startNode(id);
  }

  /** What replica `id` says about itself (throws when it does not answer in time). */
  status(id: number, timeoutMs = 2_000): Promise<NodeStatus> {
    return fetchNodeStatus(this.addresses[id] ?? '', { clusterName: this.name, timeoutMs });
  }

  /** Every replica's status, null for those that do not answer. */
  async statuses(): Promise<Array<NodeStatus | null>> {
    return Promise.all(
      this.addresses.map((_, id) => this.status(id).catch((error: unknown) => noAnswer(error))),
    );
  }

  /** Polls `check` until it returns something other than null, or fails after timeoutMs. */
  async waitFor<T>(
    what: string,
    check: () => Promise<T | null>,
    timeoutMs = clusterWaitMsDefault,
  ): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    let last = '';
    for (;;) {
      const found = await check();
      if (found !== null) return found;
      if (Date.now() > deadline) {
        last = JSON.stringify(await this.statuses().then((all) => all.map(brief)));
        throw new Error(`no ${what} within ${timeoutMs} ms; replicas say ${last}`);
      }
      await sleep(pollIntervalMs);
    }
  }

  /**
   * Waits for one leader that a quorum of replicas follows, normal, in its view (only replicas
   * in `among` are asked, and `excluding` may not be the leader).
   */
  waitForLeader(
    options: { among?: readonly number[]; excluding?: readonly number[]; viewAbove?: number } = {},
  ): Promise<{ leader: number; view: number; status: NodeStatus }> {
    const among = options.among ?? this.addresses.map((_, id) => id);
    return this.waitFor('leader', async () => {
      const statuses = await Promise.all(among.map((id) => this.status(id).catch(noAnswer)));
      const leaders = statuses.filter(
        (s): s is NodeStatus =>
          s !== null && s.isLeader && !(options.excluding ?? []).includes(s.nodeId),
      );
      for (const leader of leaders) {
        if (leader.view <= (options.viewAbove ?? -1)) continue;
        const following = statuses.filter(
          (s) => s !== null && s.status === 'normal' && s.view === leader.view,
        );
        if (following.length >= this.quorum) {
          return { leader: leader.nodeId, view: leader.view, status: leader };
        }
      }
      return null;
    });
  }

  /**
   * Waits until every replica in `ids` is normal in one view and has the same op and commit
   * numbers as the leader among them; returns that commit number.
   */
  waitForConvergence(ids: readonly number[] = this.addresses.map((_, id) => id)): Promise<number> {
    return this.waitFor('convergence', async () => {
      const statuses = await Promise.all(ids.map((id) => this.status(id).catch(noAnswer)));
      const first = statuses[0];
      if (first === null || first === undefined) return null;
      const same = statuses.every(
        (s) =>
          s !== null &&
          s.status === 'normal' &&
          s.view === first.view &&
          s.commitNumber === first.commitNumber &&
          s.opNumber === first.opNumber &&
          s.commitNumber === s.opNumber,
      );
      return same && statuses.some((s) => s?.isLeader === true) ? first.commitNumber : null;
    });
  }

  /** Cuts replica `id` off from every other replica (clients still reach it). */
  partition(id: number): void {
    for (const [link, proxy] of this.proxies) {
      const [from, to] = link.split('->').map(Number);
      if (from === id || to === id) proxy.partition();
    }
  }

  /** Ends every partition. */
  heal(): void {
    for (const proxy of this.proxies.values()) proxy.heal();
  }

  /** An SDK client that knows every replica (real addresses, in replica order). */
  connect(extra: Partial<ConnectOptions> = {}): Promise<Client> {
    return this.h.connect({ addresses: [...this.addresses], clusterName: this.name, ...extra });
  }

  /**
   * Stops every replica gracefully, then asserts that `kimberlite-admin verify` is clean on each
   * data directory and that all of them hold the same log head (last op, its checksum, state
   * digest).
   */
  async stopAllAndVerifySameHead(): Promise<void> {
    for (let id = 0; id < this.size; id++) await this.stop(id);
    const ids = this.addresses.map((_, id) => id);
    const verdicts = await Promise.all(ids.map((id) => this.verify(id)));
    for (const [id, verdict] of verdicts.entries()) {
      const output = `${verdict.run.stdout}${verdict.run.stderr}`;
      assert.ok(verdict.ok, `verify of replica ${id}:\n${output}\n${this.describe(id)}`);
    }
    const heads = verdicts.map((v) => [v.opMax, v.headChecksum, v.stateDigest]);
    for (let id = 1; id < heads.length; id++) {
      assert.deepEqual(heads[id], heads[0], `replicas 0 and ${id} hold the same log head`);
    }
  }

  /** Runs `kimberlite-admin verify --json` on replica `id`'s data directory (stopped or not). */
  async verify(id: number): Promise<VerifyOutcome> {
    const run = await this.h.runAdmin(['verify', '--data-dir', this.dataDirs[id] ?? '', '--json']);
    const report = JSON.parse(run.stdout || '{}') as {
      ok?: boolean;
      storage?: {
        opMax?: number;
        headChecksum?: string;
        superblock?: { state?: { commit?: number } };
      };
      replay?: { stateDigest?: string };
    };
    return {
      run,
      ok: run.code === 0 && report.ok === true,
      opMax: report.storage?.opMax ?? -1,
      headChecksum: report.storage?.headChecksum ?? '',
      commit: report.storage?.superblock?.state?.commit ?? null,
      stateDigest: report.replay?.stateDigest ?? '',
    };
  }
}

function splitAddress(address: string): [string, number] {
  const at = address.lastIndexOf(':');
  return [address.slice(0, at), Number(address.slice(at + 1))];
}

function noAnswer(error: unknown): null {
  if (error instanceof KmbError) return null;
  throw error;
}

function brief(status: NodeStatus | null): unknown {
  if (status === null) return null;
  const { nodeId, status: state, view, opNumber, commitNumber, isLeader } = status;
  return { nodeId, state, view, opNumber, commitNumber, isLeader };
}

// ----- histories -----

type StreamOp = HistoryOp<StreamInput, StreamOutput>;

/** Codes after which an append may or may not have been applied. */
export const unknownOutcomeCodes: ReadonlySet<string> = new Set([
  errorCodes.timeout,
  errorCodes.connection_lost,
]);

/** A pending operation: call it done with its output (or null for an unknown outcome). */
export interface Pending {
  done(output: StreamOutput | null): void;
}

/** What clients did, per stream, in real-time order (a logical clock: one tick per event). */
export class History {
  private readonly streams = new Map<string, StreamOp[]>();
  private tick = 0;
  private idNext = 1;

  /** Records a call on stream `key` by `client`; the returned handle records its return. */
  begin(key: string, client: number, input: StreamInput): Pending {
    const callTime = ++this.tick;
    const id = this.idNext++;
    const ops = this.streams.get(key) ?? [];
    this.streams.set(key, ops);
    return {
      done: (output) => {
        const returnTime = output === null ? Infinity : ++this.tick;
        ops.push({ id, client, input, output, callTime, returnTime });
      },
    };
  }

  /** Operations recorded so far, per stream. */
  get opCount(): number {
    return [...this.streams.values()].reduce((sum, ops) => sum + ops.length, 0);
  }

  /** Counts for the test's diagnostics: acknowledged and unknown appends, reads. */
  summary(): string {
    const all = [...this.streams.values()].flat();
    const appends = all.filter((op) => op.input.kind === 'append');
    const unknown = appends.filter((op) => op.output === null).length;
    const reads = all.length - appends.length;
    const acked = appends.length - unknown;
    return `${acked} acknowledged appends, ${unknown} with unknown outcome, ${reads} reads`;
  }

  /** Checks every stream's sub-history; returns the problems (none when linearizable). */
  check(): string[] {
    const problems: string[] = [];
    for (const [key, ops] of this.streams) {
      const result = checkLinearizable(streamModel(), ops);
      if (result.status === 'ok') continue;
      if (result.status === 'unknown') {
        problems.push(`stream ${key}: the checker gave up after ${result.steps} steps`);
        continue;
      }
      const prefix = result.prefix.slice(-8).join('\n    ');
      problems.push(
        `stream ${key}: not linearizable; stuck at ${result.stuckAt}\n` +
          `  after (last 8 of ${result.prefix.length}):\n    ${prefix}`,
      );
    }
    return problems;
  }
}

// ----- workload -----

export interface StreamTarget {
  readonly key: string;
  readonly tenantId: number;
  readonly streamId: number;
}

/** One acknowledged append. */
export interface Ack {
  readonly key: string;
  readonly event: string;
  readonly offset: number;
  /** performance.now() when the append was called. */
  readonly calledAtMs: number;
  /** performance.now() when the acknowledgement arrived. */
  readonly atMs: number;
}

export interface WorkloadOptions {
  readonly writersPerStream: number;
  readonly readersPerStream: number;
  /** Client options for every worker (timeouts). */
  readonly client?: Partial<ConnectOptions>;
  /** Pause between a reader's reads. */
  readonly readPauseMs?: number;
}

/** Creates a tenant and `count` streams in it through a short-lived client. */
export async function createStreams(
  cluster: TestCluster,
  tenantName: string,
  count: number,
): Promise<StreamTarget[]> {
  const setup = await cluster.connect({ requestTimeoutMs: 20_000 });
  const tenant = await setup.createTenant(tenantName);
  const targets: StreamTarget[] = [];
  for (let index = 0; index < count; index++) {
    const key = `s${index}`;
    const stream = await setup.createStream({ tenantId: tenant.tenantId, name: key });
    targets.push({ key, tenantId: tenant.tenantId, streamId: stream.streamId });
  }
  await setup.close();
  return targets;
}

/** The client was closed under the worker (the test is over, passed or failed): stop. */
function clientClosed(error: unknown): boolean {
  return error instanceof KmbError && error.message === 'the client is closed';
}

function describeError(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}

/**
 * Writers append single, uniquely named events to shared streams as fast as they are answered;
 * readers read whole streams. Every call goes into the History.
 */
export class Workload {
  readonly acks: Ack[] = [];
  readonly unexpected: string[] = [];
  private stopping = false;
  private running: Promise<void> | null = null;
  private readonly waiters = new Set<() => void>();
  private clientNext = 0;

  constructor(
    private readonly cluster: TestCluster,
    readonly history: History,
    readonly targets: readonly StreamTarget[],
    private readonly options: WorkloadOptions,
  ) {}

  async start(): Promise<void> {
    const loops: Array<Promise<void>> = [];
    for (const target of this.targets) {
      for (let w = 0; w < this.options.writersPerStream; w++) {
        loops.push(this.writer(await this.newClient(), target, this.clientNext++));
      }
      for (let r = 0; r < this.options.readersPerStream; r++) {
        loops.push(this.reader(await this.newClient(), target, this.clientNext++));
      }
    }
    this.running = Promise.all(loops).then(() => undefined);
  }

  private newClient(): Promise<Client> {
    return this.cluster.connect({
      requestTimeoutMs: 20_000,
      attemptTimeoutMs: 1_500,
      connectTimeoutMs: 1_000,
      ...this.options.client,
    });
  }

  /** Acks received after `sinceMs` (a performance.now() value). */
  acksSince(sinceMs: number): Ack[] {
    return this.acks.filter((ack) => ack.atMs > sinceMs);
  }

  /**
   * How long after `sinceMs` the first append called after it was acknowledged, or null. An
   * append called after a leader died can only be committed by its successor, so this bounds
   * the failover time from above (an ack arriving after the kill may still come from the dead
   * leader: its last replies can be in flight when it dies).
   */
  firstAckCalledAfter(sinceMs: number): number | null {
    const ack = this.acks.find((candidate) => candidate.calledAtMs > sinceMs);
    return ack === undefined ? null : ack.atMs - sinceMs;
  }

  /** Resolves once `count` acks have arrived after `sinceMs`; fails after timeoutMs. */
  async waitForAcks(count: number, sinceMs = 0, timeoutMs = clusterWaitMsDefault): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.acksSince(sinceMs).length < count) {
      if (Date.now() > deadline) {
        const got = this.acksSince(sinceMs).length;
        throw new Error(
          `only ${got} of ${count} acknowledgements within ${timeoutMs} ms; ` +
            `unexpected failures: ${this.unexpected.slice(0, 5).join('; ') || 'none'}`,
        );
      }
      await new Promise<void>((resolve) => {
        const wake = (): void => {
          clearTimeout(timer);
          this.waiters.delete(wake);
          resolve();
        };
        const timer = setTimeout(wake, 200);
        this.waiters.add(wake);
      });
    }
  }

  /** Stops every worker after its current call and waits for them. */
  async stop(): Promise<void> {
    this.stopping = true;
    await this.running;
  }

  private async writer(client: Client, target: StreamTarget, clientId: number): Promise<void> {
    for (let sequence = 0; !this.stopping; sequence++) {
      const event = `${target.key}-c${clientId}-${sequence}`;
      const input: StreamInput = { kind: 'append', events: [event], expected: null };
      const pending = this.history.begin(target.key, clientId, input);
      const calledAtMs = performance.now();
      try {
        const result = await client.append({ ...target, events: [event] });
        pending.done({ kind: 'appended', firstOffset: result.firstOffset, count: result.count });
        this.acks.push({
          key: target.key,
          event,
          offset: result.firstOffset,
          calledAtMs,
          atMs: performance.now(),
        });
        for (const wake of [...this.waiters]) wake();
      } catch (error) {
        pending.done(null);
        if (clientClosed(error)) return;
        if (!(error instanceof KmbError) || !unknownOutcomeCodes.has(error.code)) {
          this.unexpected.push(`append ${event}: ${describeError(error)}`);
        }
      }
    }
  }

  private async reader(client: Client, target: StreamTarget, clientId: number): Promise<void> {
    while (!this.stopping) {
      const pending = this.history.begin(target.key, clientId, { kind: 'read' });
      try {
        const page = await client.read({ ...target });
        assert.equal(page.nextOffset, page.endOffset, 'the whole stream fits one read');
        const events = page.events.map((event) => Buffer.from(event.data).toString('utf8'));
        pending.done({ kind: 'read', events });
      } catch (error) {
        // A read that failed observed nothing and changed nothing: it is left out.
        if (clientClosed(error)) return;
        if (!(error instanceof KmbError) || !unknownOutcomeCodes.has(error.code)) {
          this.unexpected.push(`read ${target.key}: ${describeError(error)}`);
        }
      }
      await sleep(this.options.readPauseMs ?? 20);
    }
  }
}

/**
 * Reads every stream through `client` (recorded in the history as a final read) and returns the
 * problems: an acknowledged event missing or not at its acknowledged offset, an event twice.
 */
export async function checkAcked(
  client: Client,
  workload: Workload,
  clientId = 1_000_000,
): Promise<string[]> {
  const problems: string[] = [];
  for (const target of workload.targets) {
    const pending = workload.history.begin(target.key, clientId, { kind: 'read' });
    const page = await client.read({ ...target });
    assert.equal(page.nextOffset, page.endOffset, 'the whole stream fits one read');
    const events = page.events.map((event) => Buffer.from(event.data).toString('utf8'));
    pending.done({ kind: 'read', events });
    const seen = new Set<string>();
    for (const event of events) {
      if (seen.has(event)) problems.push(`stream ${target.key}: ${event} is there twice`);
      seen.add(event);
    }
    for (const ack of workload.acks.filter((a) => a.key === target.key)) {
      if (events[ack.offset] !== ack.event) {
        const found = events.indexOf(ack.event);
        problems.push(
          `stream ${target.key}: ${ack.event} was acknowledged at offset ${ack.offset}, ` +
            (found < 0 ? 'and is missing' : `but is at offset ${found}`),
        );
      }
    }
  }
  return problems;
}

/**
 * The steady load the fault tests run: two streams of tenant `tenantName`, two writers and a
 * reader on each, recorded in one History; resolves once 100 appends are acknowledged.
 */
export async function startSteadyWorkload(
  cluster: TestCluster,
  tenantName: string,
): Promise<Workload> {
  const targets = await createStreams(cluster, tenantName, 2);
  const workload = new Workload(cluster, new History(), targets, {
    writersPerStream: 2,
    readersPerStream: 1,
  });
  await workload.start();
  await workload.waitForAcks(100);
  return workload;
}

/**
 * The verdict of a stopped workload: no unexpected failure, every acknowledged event at its
 * offset exactly once (read through a fresh client), and the whole history linearizable.
 * Returns the history's summary for the test to print.
 */
export async function checkWorkload(cluster: TestCluster, workload: Workload): Promise<string> {
  assert.deepEqual(workload.unexpected, []);
  const reader = await cluster.connect({ requestTimeoutMs: 20_000 });
  try {
    assert.deepEqual(await checkAcked(reader, workload), []);
  } finally {
    await reader.close();
  }
  assert.deepEqual(workload.history.check(), []);
  return workload.history.summary();
}
