// Proves the operator commands of kimberlite-cli end to end in-process (runCli) against three
// fake nodes that answer node_status and view_changes with documents the test sets: the JSON
// contracts of `cluster status`, `replica status`, `replication lag` and `cluster
// view-changes`, their text tables, their exit codes (0 healthy / 1 not, unreachable replicas
// shown as rows), discovery of replicas beyond --cluster from the members a node lists,
// `--since` filtering and usage errors, and `replica status --watch` refreshing until interrupted.

import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { PassThrough } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { FakeServer } from '../testing/fake_server.js';
import { runCli } from './cli.js';
import type { CliIo } from './cli_io.js';

interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

const nodes: FakeServer[] = [];
/** Per node: the status document it answers with, and its view-change history. */
const documents: Array<{ status: Record<string, unknown>; changes: unknown[] }> = [];
let dead = '';

function statusOf(id: number, fields: Record<string, unknown>): Record<string, unknown> {
  return {
    node_id: id,
    status: 'normal',
    view: 1,
    commit_number: 20,
    op_number: 20,
    is_leader: id === 1,
    leader: 1,
    cluster_size: 3,
    healthy_replicas: 3,
    cluster_name: 'local',
    commit_timestamp_us: 5_000_000,
    cluster_members: [0, 1, 2].map((node) => ({
      node_id: node,
      address: nodes[node]?.address ?? '',
      self: node === id,
      connected: true,
      is_leader: node === 1,
    })),
    ...fields,
  };
}

function reset(): void {
  for (let id = 0; id < 3; id++) documents[id] = { status: statusOf(id, {}), changes: [] };
}

before(async () => {
  for (let id = 0; id < 3; id++) {
    nodes.push(
      await FakeServer.start({
        nodeId: id,
        clusterName: 'local',
        hooks: {
          nodeStatus: () => documents[id]?.status,
          viewChanges: () => documents[id]?.changes,
        },
      }),
    );
  }
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  dead = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  reset();
});
after(async () => {
  for (const node of nodes) await node.close();
});

function addresses(): string {
  return nodes.map((node) => node.address).join(',');
}

async function cli(args: string[], extra: Partial<CliIo> = {}): Promise<Run> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const chunks = { stdout: '', stderr: '' };
  stdout.on('data', (data: Buffer) => (chunks.stdout += data.toString()));
  stderr.on('data', (data: Buffer) => (chunks.stderr += data.toString()));
  const stdin = new PassThrough();
  stdin.end();
  const env = { KMB_CLUSTER: addresses() };
  const code = await runCli(args, { stdout, stderr, stdin, env, ...extra });
  return { code, ...chunks };
}

async function json(args: string[], code = 0): Promise<Record<string, unknown>> {
  const run = await cli([...args, '--json']);
  assert.equal(run.code, code, run.stderr + run.stdout);
  return JSON.parse(run.stdout) as Record<string, unknown>;
}

type Row = Record<string, unknown>;

describe('cluster status', () => {
  it('reports every replica, the leader and the verdict', async () => {
    reset();
    const report = await json(['cluster', 'status']);
    assert.deepEqual(Object.keys(report), [
      'cluster_name',
      'cluster_size',
      'quorum',
      'view',
      'leader',
      'healthy',
      'reachable_replicas',
      'normal_replicas',
      'problems',
      'replicas',
    ]);
    assert.equal(report['leader'], 1);
    assert.equal(report['healthy'], true);
    const rows = report['replicas'] as Row[];
    assert.deepEqual(Object.keys(rows[0] ?? {}), [
      'replica_id',
      'address',
      'reachable',
      'status',
      'view',
      'op_number',
      'commit_number',
      'is_leader',
      'leader',
      'lag_ops',
      'lag_ms',
      'error',
    ]);
    assert.deepEqual(
      rows.map((row) => [row['replica_id'], row['is_leader'], row['lag_ops']]),
      [
        [0, false, 0],
        [1, true, 0],
        [2, false, 0],
      ],
    );
    const text = await cli(['cluster', 'status']);
    assert.equal(text.code, 0);
    assert.match(text.stdout, /cluster "local": 3 replicas, quorum 2, view 1, leader 1/);
    assert.match(text.stdout, /REPLICA\s+ADDRESS\s+STATUS\s+ROLE\s+VIEW\s+OP\s+COMMIT/);
  });

  it('shows a replica that is down as unreachable and still exits 0 with a quorum', async () => {
    reset();
    const list = [nodes[0]?.address, nodes[1]?.address, dead].join(',');
    const run = await cli(['cluster', 'status', '--json', '--cluster', list]);
    assert.equal(run.code, 0, run.stderr);
    const report = JSON.parse(run.stdout) as Row;
    assert.equal(report['reachable_replicas'], 2);
    const row = (report['replicas'] as Row[])[2];
    assert.equal(row?.['status'], 'unreachable');
    assert.equal((row?.['error'] as Row)['code'], 'KMB_ERR_CONNECTION_LOST');
  });

  it('exits 1 when no quorum is normal under a leader', async () => {
    reset();
    for (const id of [0, 2]) {
      documents[id] = { status: statusOf(id, { status: 'view_change', view: 2 }), changes: [] };
    }
    const run = await cli(['cluster', 'status']);
    assert.equal(run.code, 1);
    assert.match(run.stdout, /NOT HEALTHY/);
    assert.match(run.stdout, /replica 0 .* is view_change/);
    assert.equal(run.stderr, '');
  });

  it('finds replicas beyond --cluster at the addresses a node lists', async () => {
    reset();
    const run = await cli(['cluster', 'status', '--json', '--cluster', nodes[0]?.address ?? '']);
    assert.equal(run.code, 0, run.stderr);
    const rows = (JSON.parse(run.stdout) as Row)['replicas'] as Row[];
    assert.deepEqual(
      rows.map((row) => [row['address'], row['reachable']]),
      nodes.map((node) => [node.address, true]),
    );
  });
});

describe('replica status', () => {
  it("prints one replica's own document, or unreachable with exit 1", async () => {
    reset();
    const answer = await json(['replica', 'status', '--replica-id', '2']);
    assert.deepEqual(
      [answer['replica_id'], answer['address'], answer['reachable'], answer['node_id']],
      [2, nodes[2]?.address, true, 2],
    );
    assert.equal(answer['commit_timestamp_us'], 5_000_000);
    const text = await cli(['replica', 'status', '--replica-id', '1']);
    assert.match(text.stdout, /replica 1 at .*: normal, leader\n\s+view 1, op 20, commit 20/);
    const list = [nodes[0]?.address, dead].join(',');
    const down = await cli(['replica', 'status', '--replica-id', '1', '--json', '--cluster', list]);
    assert.equal(down.code, 1);
    const document = JSON.parse(down.stdout) as Row;
    assert.deepEqual([document['status'], document['reachable']], ['unreachable', false]);
  });

  it('refuses a replica the cluster does not have', async () => {
    reset();
    const run = await cli(['replica', 'status', '--replica-id', '7']);
    assert.equal(run.code, 1);
    assert.match(run.stderr, /there is no replica 7/);
    const usage = await cli(['replica', 'status']);
    assert.equal(usage.code, 2);
  });

  it('refreshes with --watch until interrupted', async () => {
    reset();
    let stop: (() => void) | null = null;
    let unsubscribed = false;
    const onInterrupt = (handler: () => void): (() => void) => {
      stop = handler;
      return () => (unsubscribed = true);
    };
    const stdout = new PassThrough();
    let lines = 0;
    stdout.on('data', (data: Buffer) => {
      lines += data.toString().split('\n').length - 1;
      if (lines >= 3) stop?.();
    });
    const stderr = new PassThrough();
    const stdin = new PassThrough();
    stdin.end();
    const args = ['replica', 'status', '--replica-id', '0', '--watch', '--interval-ms', '100'];
    const code = await runCli([...args, '--json'], {
      stdout,
      stderr,
      stdin,
      env: { KMB_CLUSTER: addresses() },
      onInterrupt,
    });
    assert.equal(code, 0);
    assert.ok(lines >= 3);
    assert.ok(unsubscribed, 'the interrupt handler is removed when watching ends');
  });
});

describe('replication lag', () => {
  it('measures each replica against the leader', async () => {
    reset();
    documents[0] = {
      status: statusOf(0, { commit_number: 17, commit_timestamp_us: 4_990_000 }),
      changes: [],
    };
    const report = await json(['replication', 'lag', '--all']);
    assert.deepEqual(Object.keys(report), [
      'leader',
      'view',
      'leader_commit_number',
      'problems',
      'replicas',
    ]);
    const rows = report['replicas'] as Row[];
    assert.deepEqual(
      rows.map((row) => [row['replica_id'], row['lag_ops'], row['lag_ms']]),
      [
        [0, 3, 10],
        [1, 0, 0],
        [2, 0, 0],
      ],
    );
    const one = await json(['replication', 'lag', '--replica-id', '0']);
    assert.equal((one['replicas'] as Row[]).length, 1);
    const text = await cli(['replication', 'lag']);
    assert.match(text.stdout, /leader: replica 1 \(view 1\), commit 20/);
  });
});

describe('cluster view-changes', () => {
  it('merges the histories by view and filters by --since', async () => {
    reset();
    const now = Date.now();
    const at = (agoMs: number): string => new Date(now - agoMs).toISOString();
    const recent = {
      started_at: at(60_000),
      finished_at: at(59_000),
      old_view: 0,
      view: 1,
      reason: 'primary_timeout',
      leader: 1,
      duration_ms: 1000,
    };
    const old = { ...recent, started_at: at(3_600_000), finished_at: at(3_599_000) };
    documents[0] = { status: statusOf(0, {}), changes: [{ ...old, view: 0 }, recent] };
    documents[1] = { status: statusOf(1, {}), changes: [{ ...recent, started_at: at(60_500) }] };
    const report = await json(['cluster', 'view-changes', '--since', '10m']);
    assert.deepEqual(Object.keys(report), ['since', 'view_changes', 'unreachable']);
    const changes = report['view_changes'] as Row[];
    assert.deepEqual(
      changes.map((c) => [c['view'], c['leader'], c['reported_by'], c['started_at']]),
      [[1, 1, [0, 1], at(60_500)]],
    );
    const all = await json(['cluster', 'view-changes']);
    assert.equal((all['view_changes'] as Row[]).length, 2);
    const text = await cli(['cluster', 'view-changes', '--since', '2h']);
    assert.match(text.stdout, /VIEW\s+FROM\s+STARTED\s+FINISHED\s+DURATION\s+LEADER\s+REASON/);
    const bad = await cli(['cluster', 'view-changes', '--since', '10 minutes']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /is not a duration such as 30s, 10m/);
  });

  it('fails when no replica answers', async () => {
    const run = await cli(['cluster', 'view-changes', '--json', '--cluster', dead]);
    assert.equal(run.code, 1);
    assert.equal(run.stdout, '');
    assert.match(run.stderr, /no replica answered/);
  });
});
