// The actions of kimberlite-cli's operator commands: `cluster status`, `cluster view-changes`,
// `replica status` and `replication lag` (docs/cli.md, the runbook's diagnosis steps). Each asks
// every replica for its own account (the node_status or view_changes query, one node at a time,
// no failover, a short timeout), builds a report with cluster_report.ts, and prints it as text
// or, with --json, as the documented JSON.
//
// A replica that does not answer is part of the answer ("unreachable"), not a failure of the
// command; the exit code carries the verdict instead: `cluster status` exits 1 unless a quorum
// is normal under one leader, `replica status` exits 1 when the replica did not answer,
// `replication lag` exits 1 when no leader answered. When --cluster lists fewer replicas than
// the cluster has, the others are asked at the addresses the first answering replica lists.

import { fetchNodeStatus, fetchViewChanges, nodeQueryLimits } from '../client/client.js';
import type { NodeQueryOptions, NodeStatus } from '../client/client.js';
import { KmbError, kmbError } from '../core/errors.js';
import type { GlobalOptions } from './cli_commands.js';
import type { CliIo } from './cli_io.js';
import { exitCodes, formatTable, write, writeJson } from './cli_io.js';
import {
  clusterReport,
  clusterSizeOf,
  errorJson,
  lagReport,
  mergeViewChanges,
} from './cluster_report.js';
import type {
  ClusterReport,
  LagReport,
  MergedViewChange,
  Probe,
  StatusProbe,
} from './cluster_report.js';

export interface OperatorContext {
  readonly io: CliIo;
  readonly globals: GlobalOptions;
  /** The addresses given with --cluster (or KMB_CLUSTER), in replica order. */
  readonly addresses: readonly string[];
  /** The exit code the command ends with when it does not throw. */
  readonly exit: { code: number };
}

/** Replicas one cluster may have, asked at most (the protocol's replica index is one byte). */
const replicaCountMax = 64;

function queryOptions(globals: GlobalOptions): NodeQueryOptions {
  return {
    clusterName: globals.clusterName,
    timeoutMs: Math.min(globals.timeoutMs, nodeQueryLimits.timeoutMsDefault),
  };
}

async function probe<T>(
  replicaId: number,
  address: string | null,
  ask: (address: string) => Promise<T>,
): Promise<Probe<T>> {
  if (address === null) {
    const reason = `no address is known for replica ${replicaId}; list every replica in --cluster`;
    return { replicaId, address, reachable: false, error: kmbError('invalid_argument', reason) };
  }
  try {
    return { replicaId, address, reachable: true, value: await ask(address) };
  } catch (error) {
    if (!(error instanceof KmbError)) throw error;
    return { replicaId, address, reachable: false, error };
  }
}

/** The address another replica's status lists for `replicaId`, if any answered with one. */
function discoveredAddress(probes: readonly StatusProbe[], replicaId: number): string | null {
  for (const answer of probes) {
    if (!answer.reachable) continue;
    const member = answer.value.clusterMembers.find((m) => m.nodeId === replicaId);
    if (member !== undefined && member.address !== '') return member.address;
  }
  return null;
}

/**
 * Every replica's status, one probe per replica of the cluster: those given with --cluster,
 * then any the cluster has beyond them, at the addresses the answering replicas list.
 */
export async function probeStatuses(context: OperatorContext): Promise<StatusProbe[]> {
  const options = queryOptions(context.globals);
  const ask = (address: string): Promise<NodeStatus> => fetchNodeStatus(address, options);
  const given = context.addresses.slice(0, replicaCountMax);
  const probes = await Promise.all(given.map((address, id) => probe(id, address, ask)));
  const size = Math.min(clusterSizeOf(probes), replicaCountMax);
  const more: Array<Promise<StatusProbe>> = [];
  for (let id = probes.length; id < size; id++) {
    more.push(probe(id, discoveredAddress(probes, id), ask));
  }
  return [...probes, ...(await Promise.all(more))];
}

function noSuchReplica(size: number, replicaId: number): KmbError {
  const known = `the cluster has ${size} replicas (0..${size - 1})`;
  return kmbError('invalid_argument', `${known}; there is no replica ${replicaId}`);
}

function dash(value: number | string | null): string {
  return value === null ? '-' : String(value);
}

function lagMsText(lagMs: number | null): string {
  return lagMs === null ? '-' : String(Math.round(lagMs * 1000) / 1000);
}

// ----- cluster status -----

export function formatClusterReport(report: ClusterReport): string {
  const name = report.cluster_name === null ? 'cluster' : `cluster "${report.cluster_name}"`;
  const leader = report.leader === null ? 'no leader' : `leader ${report.leader}`;
  const verdict = report.healthy ? 'healthy' : 'NOT HEALTHY';
  const head =
    `${name}: ${report.cluster_size} replicas, quorum ${report.quorum}, ` +
    `view ${dash(report.view)}, ${leader}; ${report.reachable_replicas} reachable, ` +
    `${report.normal_replicas} normal: ${verdict}\n`;
  const header = [
    'REPLICA',
    'ADDRESS',
    'STATUS',
    'ROLE',
    'VIEW',
    'OP',
    'COMMIT',
    'LAG OPS',
    'LAG MS',
  ];
  const rows = report.replicas.map((row) => [
    String(row.replica_id),
    row.address ?? '?',
    row.status,
    row.reachable ? (row.is_leader ? 'leader' : 'backup') : '-',
    dash(row.view),
    dash(row.op_number),
    dash(row.commit_number),
    dash(row.lag_ops),
    lagMsText(row.lag_ms),
  ]);
  const problems = report.problems.map((problem) => `  - ${problem}\n`).join('');
  return head + formatTable(header, rows) + (problems === '' ? '' : `problems:\n${problems}`);
}

export async function clusterStatus(context: OperatorContext): Promise<void> {
  const report = clusterReport(await probeStatuses(context));
  const { io, globals } = context;
  if (globals.json) await writeJson(io, report);
  else await write(io.stdout, formatClusterReport(report));
  context.exit.code = report.healthy ? exitCodes.ok : exitCodes.failure;
}

// ----- replica status -----

/** `replica status --json`: the replica's own status document, after where it was asked. */
export function replicaStatusJson(answer: StatusProbe): Record<string, unknown> {
  const base = { replica_id: answer.replicaId, address: answer.address };
  if (!answer.reachable) {
    return { ...base, reachable: false, status: 'unreachable', error: errorJson(answer.error) };
  }
  return { ...base, reachable: true, ...answer.value.raw };
}

export function formatReplicaStatus(answer: StatusProbe): string {
  const where = `replica ${answer.replicaId} at ${answer.address ?? '(unknown address)'}`;
  if (!answer.reachable) {
    return `${where}: unreachable (${answer.error.code}: ${answer.error.message})\n`;
  }
  const s = answer.value;
  const role = s.isLeader ? 'leader' : s.status === 'normal' ? 'backup' : s.status;
  const members = s.clusterMembers.map((member) => {
    const notes = [
      member.self ? 'self' : null,
      member.isLeader ? 'leader' : null,
      member.self || member.connected === null
        ? null
        : member.connected
          ? 'connected'
          : 'not connected',
    ].filter((note) => note !== null);
    return `${member.nodeId} ${member.address}${notes.length > 0 ? ` (${notes.join(', ')})` : ''}`;
  });
  const healthy = s.healthyReplicas === null ? '' : `, ${s.healthyReplicas} healthy`;
  const lines = [
    `${where}: ${s.status}, ${role}`,
    `  view ${s.view}, op ${s.opNumber}, commit ${s.commitNumber}, leader ${dash(s.leader)}`,
    `  cluster "${s.clusterName}": ${s.clusterSize} replicas${healthy}`,
  ];
  if (members.length > 0) lines.push(`  members: ${members.join('; ')}`);
  return `${lines.join('\n')}\n`;
}

/** Replica `replicaId`'s own status, from its address in --cluster (or by asking them all). */
export async function probeReplica(
  context: OperatorContext,
  replicaId: number,
): Promise<StatusProbe> {
  const given = context.addresses[replicaId];
  if (given !== undefined) {
    const options = queryOptions(context.globals);
    return probe(replicaId, given, (address) => fetchNodeStatus(address, options));
  }
  const probes = await probeStatuses(context);
  const found = probes[replicaId];
  if (found !== undefined) return found;
  const size = clusterSizeOf(probes);
  throw noSuchReplica(size, replicaId);
}

/** Resolves after delayMs, or at once when `signal` aborts. */
function pause(delayMs: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, delayMs);
    signal.addEventListener('abort', done);
  });
}

export interface ReplicaStatusOptions {
  readonly replicaId: number;
  readonly watch: boolean;
  readonly intervalMs: number;
}

export async function replicaStatus(
  context: OperatorContext,
  options: ReplicaStatusOptions,
): Promise<void> {
  const { io, globals } = context;
  const stop = new AbortController();
  const unsubscribe = options.watch ? (io.onInterrupt?.(() => stop.abort()) ?? null) : null;
  try {
    for (;;) {
      const answer = await probeReplica(context, options.replicaId);
      if (globals.json) await writeJson(io, replicaStatusJson(answer));
      else {
        const stamp = options.watch ? `--- ${new Date().toISOString()}\n` : '';
        await write(io.stdout, stamp + formatReplicaStatus(answer));
      }
      context.exit.code = answer.reachable ? exitCodes.ok : exitCodes.failure;
      if (!options.watch) return;
      await pause(options.intervalMs, stop.signal);
      if (stop.signal.aborted) break;
    }
    // Watching ends when the operator interrupts it: that is how it is meant to end.
    context.exit.code = exitCodes.ok;
  } finally {
    unsubscribe?.();
  }
}

// ----- replication lag -----

export function formatLagReport(report: LagReport): string {
  const head =
    report.leader === null
      ? 'no leader answered: lag cannot be measured\n'
      : `leader: replica ${report.leader} (view ${dash(report.view)}), ` +
        `commit ${dash(report.leader_commit_number)}\n`;
  const header = ['REPLICA', 'ADDRESS', 'ROLE', 'COMMIT', 'LAG OPS', 'LAG MS'];
  const rows = report.replicas.map((row) => [
    String(row.replica_id),
    row.address ?? '?',
    row.reachable ? (row.is_leader ? 'leader' : 'backup') : 'unreachable',
    dash(row.commit_number),
    dash(row.lag_ops),
    lagMsText(row.lag_ms),
  ]);
  const problems = report.problems.map((problem) => `  - ${problem}\n`).join('');
  return head + formatTable(header, rows) + (problems === '' ? '' : `problems:\n${problems}`);
}

export async function replicationLag(
  context: OperatorContext,
  options: { replicaId: number | undefined },
): Promise<void> {
  const full = lagReport(await probeStatuses(context));
  const report =
    options.replicaId === undefined
      ? full
      : { ...full, replicas: full.replicas.filter((row) => row.replica_id === options.replicaId) };
  if (report.replicas.length === 0) {
    const size = full.replicas.length;
    throw noSuchReplica(size, options.replicaId ?? -1);
  }
  const { io, globals } = context;
  if (globals.json) await writeJson(io, report);
  else await write(io.stdout, formatLagReport(report));
  context.exit.code = report.leader === null ? exitCodes.failure : exitCodes.ok;
}

// ----- cluster view-changes -----

/** `cluster view-changes --json`. */
export interface ViewChangesReport {
  /** The start of the window asked for (ISO 8601), or null for everything the nodes remember. */
  readonly since: string | null;
  readonly view_changes: readonly MergedViewChange[];
  /** Replicas whose history is missing because they did not answer. */
  readonly unreachable: ReadonlyArray<{
    readonly replica_id: number;
    readonly address: string | null;
    readonly error: { readonly code: string; readonly message: string };
  }>;
}

export function formatViewChanges(report: ViewChangesReport): string {
  const window = report.since === null ? '' : ` since ${report.since}`;
  let text: string;
  if (report.view_changes.length === 0) text = `no view changes${window}\n`;
  else {
    const header = [
      'VIEW',
      'FROM',
      'STARTED',
      'FINISHED',
      'DURATION',
      'LEADER',
      'REASON',
      'SEEN BY',
    ];
    const rows = report.view_changes.map((change) => [
      String(change.view),
      String(change.old_view),
      change.started_at,
      change.finished_at ?? '(in progress)',
      change.duration_ms === null ? '-' : `${change.duration_ms} ms`,
      dash(change.leader),
      change.reason,
      change.reported_by.join(','),
    ]);
    text = formatTable(header, rows);
  }
  for (const missing of report.unreachable) {
    const where = missing.address === null ? '' : ` (${missing.address})`;
    text += `replica ${missing.replica_id}${where} did not answer; its history is not included\n`;
  }
  return text;
}

export async function clusterViewChanges(
  context: OperatorContext,
  options: { sinceMs: number | null },
): Promise<void> {
  const nowMs = Date.now();
  const statuses = await probeStatuses(context);
  const queries = queryOptions(context.globals);
  const histories = await Promise.all(
    statuses.map((status) =>
      probe(status.replicaId, status.address, (address) => fetchViewChanges(address, queries)),
    ),
  );
  const answered = histories.flatMap((h) =>
    h.reachable ? [{ replicaId: h.replicaId, changes: h.value }] : [],
  );
  if (answered.length === 0) {
    const reasons = histories.map((h) =>
      h.reachable ? '' : `replica ${h.replicaId}: ${h.error.code}: ${h.error.message}`,
    );
    throw kmbError('timeout', `no replica answered: ${reasons.join('; ')}`);
  }
  const sinceMs = options.sinceMs === null ? 0 : nowMs - options.sinceMs;
  const report: ViewChangesReport = {
    since: options.sinceMs === null ? null : new Date(sinceMs).toISOString(),
    view_changes: mergeViewChanges(answered, sinceMs),
    unreachable: histories.flatMap((h) =>
      h.reachable
        ? []
        : [{ replica_id: h.replicaId, address: h.address, error: errorJson(h.error) }],
    ),
  };
  const { io, globals } = context;
  if (globals.json) await writeJson(io, report);
  else await write(io.stdout, formatViewChanges(report));
  context.exit.code = exitCodes.ok;
}
