// The metrics of a real 3-replica cluster (separate kimberlite-server processes), checked
// against what the tests did to it: writes, a SIGKILL of the leader and more writes; a corrupted
// journal record repaired from peers; a peer from another cluster.

import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { open } from 'node:fs/promises';
import { connect as netConnect } from 'node:net';
import { test } from 'node:test';
import type { TestContext } from 'node:test';
import {
  declaredTypes,
  missingSpecNames,
  specMetricNames,
} from '../src/observability/spec_names.test-support.js';
import { clusterIdFromName, headerSizeBytes } from '../src/core/header.js';
import { encodeFrame } from '../src/net/frame.js';
import {
  encodeReplicaHello,
  replicaFrameKind,
  replicaProtocolVersion,
} from '../src/net/replica_bus.js';
import { fetchOps, parseMetrics, sampleValue } from './harness.js';
import { readJournal } from './journal_files.js';
import { Harness } from './harness.js';
import type { Sample } from './harness.js';
import { TestCluster, hangTimeoutMs } from './cluster_harness.js';

interface Scrape {
  readonly text: string;
  readonly samples: Sample[];
}

async function scrape(cluster: TestCluster, id: number, path = '/metrics'): Promise<Scrape> {
  const response = await fetchOps(cluster.node(id), path);
  assert.equal(response.status, 200, `${path} of replica ${id}: ${response.text}`);
  return { text: response.text, samples: parseMetrics(response.text) };
}

/** A vsr_* value of replica `id` (label replica_id), failing when the series is absent. */
function vsr(s: Scrape, id: number, name: string, labels: Record<string, string> = {}): number {
  const found = sampleValue(s.samples, name, { replica_id: String(id), ...labels });
  assert.ok(found !== undefined, `${name}${JSON.stringify(labels)} on replica ${id}`);
  return found;
}

/** A kmb_* / kimberlite_* value of node `id` (label node_id). */
function node(s: Scrape, id: number, name: string, labels: Record<string, string> = {}): number {
  const found = sampleValue(s.samples, name, { node_id: String(id), ...labels });
  assert.ok(found !== undefined, `${name}${JSON.stringify(labels)} on node ${id}`);
  return found;
}

function sum(s: Scrape, name: string): number {
  return s.samples.filter((x) => x.name === name).reduce((total, x) => total + x.value, 0);
}

/** Runs promtool check metrics on the text; false (with a diagnostic) when promtool is absent. */
function promtool(t: TestContext, text: string, what: string): void {
  const probe = spawnSync('promtool', ['--version'], { encoding: 'utf8' });
  if (probe.error !== undefined || probe.status !== 0) {
    t.diagnostic(`promtool not installed: lint of ${what} skipped`);
    return;
  }
  const check = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
  assert.equal(check.status, 0, `promtool on ${what}:\n${check.stdout}${check.stderr}`);
}

async function appendEach(cluster: TestCluster, count: number, tag: string): Promise<void> {
  const db = await cluster.connect({ requestTimeoutMs: 20_000 });
  try {
    const tenant = await db.createTenant(`metrics-${tag}`);
    const stream = await db.createStream({ tenantId: tenant.tenantId, name: 's' });
    for (let index = 0; index < count; index++) {
      await db.append({ tenantId: tenant.tenantId, streamId: stream.streamId, events: [tag] });
    }
  } finally {
    await db.close();
  }
}

test(
  'every replica reports what the cluster did, and passes promtool',
  { timeout: hangTimeoutMs },
  async (t) => {
    // Proves, on real processes: after writes, vsr_operations_total{status="success"} on every
    // replica equals the committed op count; only the leader times prepares (its
    // vsr_prepare_latency_seconds count equals the ops it prepared, the backups' is 0) and
    // commit broadcasts; prepares and PrepareOks show up by message_type as sent by one side and
    // received by the other (every op needed at least one backup's PrepareOk); the leader counts
    // a quorum of votes and no replication lag, the backups report both as NaN (unknown); all
    // replicas see 3 healthy replicas; every spec name is declared on /metrics or
    // /metrics/compat. After the leader is SIGKILLed and more writes commit, the survivors count
    // and time the view change (kmb_ and kimberlite_ view-change names equal the vsr_ sum), the
    // new leader's prepare count grows by exactly the new ops, it reports the dead replica
    // unreachable and lagging, and every survivor's /metrics still passes promtool.
    const h = new Harness(t);
    const cluster = await TestCluster.start(h, { name: 'metrics' });
    const first = await cluster.waitForLeader();
    await appendEach(cluster, 10, 'a');
    const committed = await cluster.waitForConvergence();
    const backups = [0, 1, 2].filter((id) => id !== first.leader);

    const before = await Promise.all([0, 1, 2].map((id) => scrape(cluster, id)));
    for (const id of [0, 1, 2]) {
      const s = before[id] as Scrape;
      promtool(t, s.text, `/metrics of replica ${id}`);
      assert.equal(vsr(s, id, 'vsr_operations_total', { status: 'success' }), committed);
      assert.equal(node(s, id, 'kimberlite_cluster_replicas', { status: 'healthy' }), 3);
      const prepares = vsr(s, id, 'vsr_prepare_latency_seconds_count');
      assert.equal(prepares, id === first.leader ? committed : 0, `prepares timed on ${id}`);
    }
    const leader = before[first.leader] as Scrape;
    const sentBy = (s: Scrape, id: number, type: string) =>
      vsr(s, id, 'vsr_messages_sent_total', { message_type: type });
    const receivedBy = (s: Scrape, id: number, type: string) =>
      vsr(s, id, 'vsr_messages_received_total', { message_type: type });
    assert.ok(sentBy(leader, first.leader, 'prepare') >= 2 * committed);
    assert.ok(receivedBy(leader, first.leader, 'prepare_ok') >= committed);
    assert.equal(vsr(leader, first.leader, 'vsr_commit_latency_seconds_count'), committed);
    assert.ok(vsr(leader, first.leader, 'vsr_prepare_ok_votes') >= cluster.quorum);
    // Each op needs one backup's PrepareOk for a quorum of 2 (a backup that executes an op
    // before its own write is durable does not acknowledge it, so one alone may send fewer).
    const oks = backups.map((id) => sentBy(before[id] as Scrape, id, 'prepare_ok'));
    assert.ok((oks[0] ?? 0) + (oks[1] ?? 0) >= committed, `PrepareOks sent: ${oks.join(', ')}`);
    for (const id of backups) {
      const s = before[id] as Scrape;
      assert.ok(receivedBy(s, id, 'prepare') >= committed);
      assert.equal(sentBy(s, id, 'prepare'), 0);
      assert.equal(vsr(s, id, 'vsr_commit_latency_seconds_count'), 0);
      assert.ok(Number.isNaN(vsr(s, id, 'vsr_prepare_ok_votes')));
      const lag = 'kimberlite_replication_lag_seconds';
      assert.equal(node(leader, first.leader, lag, { replica_id: String(id) }), 0);
      const other = backups.find((b) => b !== id) ?? 0;
      assert.ok(Number.isNaN(node(s, id, lag, { replica_id: String(other) })));
    }
    const compat = await scrape(cluster, first.leader, '/metrics/compat');
    assert.deepEqual(missingSpecNames(specMetricNames(), leader.text, compat.text), []);
    assert.equal(declaredTypes(compat.text).get('vsr_prepare_latency_ms'), 'histogram');

    await cluster.kill(first.leader);
    const second = await cluster.waitForLeader({
      excluding: [first.leader],
      viewAbove: first.view,
    });
    await appendEach(cluster, 5, 'b');
    const after = await cluster.waitForConvergence(backups);
    const newOps = after - committed;
    assert.ok(newOps >= 7, `${newOps} ops after the view change`);
    const dead = String(first.leader);
    const seen = await cluster.waitFor('the dead replica reported unreachable', async () => {
      const s = await scrape(cluster, second.leader);
      const unreachable = node(s, second.leader, 'kimberlite_cluster_replicas', {
        status: 'unreachable',
      });
      return unreachable >= 1 ? s : null;
    });
    const lag = node(seen, second.leader, 'kimberlite_replication_lag_seconds', {
      replica_id: dead,
    });
    assert.ok(lag > 0, `the dead replica's lag is ${lag}`);
    for (const id of backups) {
      const s = id === second.leader ? seen : await scrape(cluster, id);
      promtool(t, s.text, `/metrics of replica ${id} after the view change`);
      const changes = sum(s, 'vsr_view_changes_total');
      assert.ok(changes >= 1, `view changes on ${id}`);
      assert.equal(node(s, id, 'kmb_consensus_view_changes_total'), changes);
      assert.equal(node(s, id, 'kimberlite_consensus_view_changes_total'), changes);
      assert.ok(vsr(s, id, 'vsr_view_change_latency_seconds_count') >= 1);
      assert.equal(vsr(s, id, 'vsr_operations_total', { status: 'success' }), after);
      const prepares = vsr(s, id, 'vsr_prepare_latency_seconds_count');
      // The new leader re-prepares nothing it did not time: exactly the ops written in its view.
      if (id === second.leader) assert.equal(prepares, newOps);
      else assert.equal(prepares, 0);
    }
  },
);

/** Flips one byte in the body of the record holding `event` (a committed, non-tail record). */
async function corruptRecord(dataDir: string, event: string): Promise<number> {
  const records = await readJournal(dataDir);
  const damaged = records.find((record) => record.events.includes(event));
  assert.ok(damaged !== undefined, `${event} has a record in the journal`);
  assert.ok(damaged.op < (records.at(-1)?.op ?? 0), 'the damaged record is not the tail');
  const file = await open(damaged.path, 'r+');
  try {
    const at = damaged.position + headerSizeBytes + Math.floor(damaged.bodySizeBytes / 2);
    const byte = Buffer.alloc(1);
    await file.read(byte, 0, 1, at);
    byte[0] = (byte[0] ?? 0) ^ 0xff;
    await file.write(byte, 0, 1, at);
  } finally {
    await file.close();
  }
  return damaged.op;
}

/** Introduces itself on `address` as a replica of another cluster, and hangs up. */
async function foreignHello(address: string): Promise<void> {
  const at = address.lastIndexOf(':');
  const socket = netConnect({ host: address.slice(0, at), port: Number(address.slice(at + 1)) });
  socket.on('error', () => undefined);
  socket.resume();
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  const hello = encodeReplicaHello({
    protocolVersion: replicaProtocolVersion,
    clusterName: 'elsewhere',
    cluster: clusterIdFromName('elsewhere'),
    replica: 0,
    replicaCount: 3,
  });
  socket.end(encodeFrame(replicaFrameKind.hello, hello));
}

test(
  'corruption, its repair and a foreign peer show in the metrics',
  { timeout: hangTimeoutMs },
  async (t) => {
    // Proves the storage and peer-input metrics on real processes: a byte of a committed record
    // is flipped in a stopped backup's journal; after it restarts and catches up, its
    // vsr_checksum_failures_total{component="log"} is at least 1 and kmb_checksum_failures_total
    // equals the vsr_ sum, it repaired ops from peers (vsr_repairs_total{status="success"} and
    // the repair latency count are positive) and timed its recovery once. A connection that
    // introduces itself as a replica of another cluster is counted in
    // vsr_byzantine_rejections_total{reason="handshake_rejected"}. /metrics passes promtool.
    // Scrub tours and clock samples are counted, and the clock offset is a finite estimate.
    const h = new Harness(t);
    const cluster = await TestCluster.start(h, { name: 'metrics-repair' });
    const { leader } = await cluster.waitForLeader();
    const victim = (leader + 1) % cluster.size;
    await appendEach(cluster, 20, 'c');
    await cluster.waitForConvergence();
    await cluster.stop(victim);
    const op = await corruptRecord(cluster.dataDirs[victim] ?? '', 'c');
    t.diagnostic(`flipped a byte in op ${op} of replica ${victim}`);
    await cluster.restart(victim);
    await appendEach(cluster, 3, 'd');
    await cluster.waitForConvergence();
    const s = await scrape(cluster, victim);
    promtool(t, s.text, `/metrics of replica ${victim} after its repair`);
    const log = vsr(s, victim, 'vsr_checksum_failures_total', { component: 'log' });
    const superblock = vsr(s, victim, 'vsr_checksum_failures_total', { component: 'superblock' });
    assert.ok(log >= 1, `log checksum failures ${log}`);
    assert.equal(node(s, victim, 'kmb_checksum_failures_total'), log + superblock);
    assert.ok(vsr(s, victim, 'vsr_repairs_total', { status: 'success' }) >= 1);
    assert.ok(vsr(s, victim, 'vsr_repair_latency_seconds_count') >= 1);
    assert.equal(vsr(s, victim, 'vsr_recovery_latency_seconds_count'), 1);

    const target = (victim + 1) % cluster.size;
    await foreignHello(cluster.addresses[target] ?? '');
    await cluster.waitFor('the foreign hello counted', async () => {
      const after = await scrape(cluster, target);
      const rejected = vsr(after, target, 'vsr_byzantine_rejections_total', {
        reason: 'handshake_rejected',
      });
      return rejected >= 1 ? rejected : null;
    });

    // The background phases are live too: the scrubber completes tours, clocks are sampled and
    // agree (one machine, so the offset is far below a second).
    const live = await cluster.waitFor('a scrub tour and a clock estimate', async () => {
      const m = await scrape(cluster, target);
      const tours = vsr(m, target, 'vsr_scrub_tours_completed_total');
      const samples = vsr(m, target, 'vsr_clock_samples_total');
      const offset = vsr(m, target, 'vsr_clock_offset_seconds');
      return tours >= 1 && samples >= 1 && Number.isFinite(offset) ? m : null;
    });
    assert.ok(Math.abs(vsr(live, target, 'vsr_clock_offset_seconds')) < 1);
  },
);
