// Proves that a real single-node KimberliteNode (real disk, real sockets, one process) feeds the
// vsr_* and kimberlite_* instruments from what actually happened: vsr_operations_total counts
// each applied request once, success or kernel failure, and their sum equals the ops committed
// since start; the leader times every op it prepared (vsr_prepare_latency_seconds and the
// kimberlite commit-latency summary count exactly those ops) while a single node broadcasts no
// commit (vsr_commit_latency_seconds stays empty); a resent request counts as a duplicate; the
// replica-state gauges match /status; recovery was timed once; the sampler reports memory and
// the data directory's disk usage; and the node's /metrics passes promtool (skipped with the
// reason when promtool is absent). After a restart on the same directory, replayed commits are
// not counted again.

import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { asOffset, asStreamId, asTenantId } from '../core/types.js';
import { Metrics } from '../observability/metrics.js';
import { appliedClockOffsetUs } from './node_metrics.js';
import { silentLogger } from '../observability/logger.js';
import { RawClient, newClientId } from '../testing/raw_client.js';
import { KimberliteNode } from './node.js';
import type { NodeConfig } from './node.js';
import { singleNodeConfig } from './test_config.test-support.js';

function config(dataDir: string): NodeConfig {
  return singleNodeConfig(dataDir, { clusterName: 'metrics', prepareRequestCountMax: 1 });
}

const audit = { actor: 'test', reason: 'metrics', correlationId: null };

/** The value of `name{labels}`; the label text must match the exposition exactly. */
function sample(text: string, name: string, labels = '{replica_id="0"}'): number {
  for (const line of text.split('\n')) {
    if (line.startsWith(`${name}${labels} `)) {
      return Number(line.slice(name.length + labels.length + 1));
    }
  }
  throw new Error(`${name}${labels} is not in the exposition`);
}

async function writes(node: KimberliteNode): Promise<void> {
  const client = await RawClient.connect(node.address);
  try {
    const id = newClientId();
    await client.request(id, 0, null);
    await client.request(id, 1, { kind: 'create_tenant', name: 'acme', audit });
    await client.request(id, 2, {
      kind: 'create_stream',
      tenantId: asTenantId(1),
      name: 's',
      dataClass: 'PHI',
      audit,
    });
    const append = (n: number, expectedOffset: number | null) =>
      client.request(id, n, {
        kind: 'append',
        tenantId: asTenantId(1),
        streamId: asStreamId(1),
        expectedOffset: expectedOffset === null ? null : asOffset(expectedOffset),
        events: [new TextEncoder().encode(`event ${n}`)],
        audit,
      });
    for (let n = 3; n <= 7; n++) assert.equal((await append(n, null)).kind, 'reply');
    // Committed, but the kernel refuses it: a failed operation.
    await append(8, 0);
    // The same request again: answered from the session, a duplicate.
    await append(8, 0);
  } finally {
    client.close();
  }
}

function promtool(text: string): string | null {
  const probe = spawnSync('promtool', ['--version'], { encoding: 'utf8' });
  if (probe.error !== undefined || probe.status !== 0) return null;
  const check = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
  assert.equal(check.status, 0, `promtool said:\n${check.stdout}${check.stderr}`);
  return check.stdout;
}

test('a single node feeds vsr_* and kimberlite_* from real events', async (t) => {
  const dataDir = await mkdtemp(join(tmpdir(), 'kmb-node-metrics-'));
  t.after(() => rm(dataDir, { recursive: true, force: true }));
  const metrics = new Metrics({ nodeId: 0 });
  const node = await KimberliteNode.start({
    config: config(dataDir),
    logger: silentLogger(),
    metrics,
  });
  try {
    await writes(node);
    const status = node.status();
    const committed = Number(status['commit_number']);
    assert.equal(committed, 9);
    // The sampler's first statfs runs at start; give it a moment to land.
    await new Promise((resolve) => setTimeout(resolve, 100));
    const text = await metrics.render();
    const success = sample(text, 'vsr_operations_total', '{status="success",replica_id="0"}');
    const failure = sample(text, 'vsr_operations_total', '{status="failure",replica_id="0"}');
    assert.equal(failure, 1);
    assert.equal(success + failure, committed);
    assert.equal(sample(text, 'vsr_prepare_latency_seconds_count'), committed);
    const summary = 'kimberlite_consensus_commit_latency_seconds_count';
    assert.equal(sample(text, summary, '{node_id="0"}'), committed);
    assert.equal(sample(text, 'vsr_commit_latency_seconds_count'), 0);
    // Every answered write request, the duplicate included (kmb_write_duration_seconds' cell).
    assert.equal(sample(text, 'vsr_client_latency_seconds_count'), committed + 1);
    assert.equal(sample(text, 'vsr_duplicate_requests_total'), 1);
    assert.equal(sample(text, 'vsr_recovery_latency_seconds_count'), 1);
    assert.equal(sample(text, 'vsr_replica_status'), 0);
    assert.equal(sample(text, 'vsr_view_number'), status['view']);
    assert.equal(sample(text, 'vsr_commit_number'), committed);
    assert.equal(sample(text, 'vsr_op_number'), status['op_number']);
    assert.equal(sample(text, 'vsr_log_entries'), committed);
    assert.equal(sample(text, 'vsr_quorum_size'), 1);
    assert.equal(sample(text, 'vsr_cluster_size'), 1);
    assert.equal(sample(text, 'vsr_prepare_ok_votes'), 1);
    assert.equal(sample(text, 'vsr_client_sessions_active'), 1);
    assert.equal(sample(text, 'vsr_clock_offset_seconds'), 0);
    assert.equal(
      sample(text, 'vsr_messages_sent_total', '{message_type="prepare",replica_id="0"}'),
      0,
    );
    const healthy = '{status="healthy",node_id="0"}';
    assert.equal(sample(text, 'kimberlite_cluster_replicas', healthy), 1);
    assert.ok(sample(text, 'vsr_memory_used_bytes') > 0);
    const usage = sample(text, 'kimberlite_storage_disk_usage_percent', '{node_id="0"}');
    assert.ok(usage > 0 && usage <= 100, `disk usage ${usage}`);
    if (promtool(text) === null) t.diagnostic('promtool not installed: lint check skipped');
  } finally {
    await node.stop();
  }

  // Replayed commits are history, not new operations.
  const again = new Metrics({ nodeId: 0 });
  const restarted = await KimberliteNode.start({
    config: config(dataDir),
    logger: silentLogger(),
    metrics: again,
  });
  try {
    const text = await again.render();
    assert.equal(sample(text, 'vsr_operations_total', '{status="success",replica_id="0"}'), 0);
    assert.equal(sample(text, 'vsr_prepare_latency_seconds_count'), 0);
    assert.equal(sample(text, 'vsr_commit_number'), 9);
  } finally {
    await restarted.stop();
  }
});

test('the clock offset metric is the correction applied, not the interval midpoint', () => {
  // Proves vsr_clock_offset_seconds reads 0 for a clock inside a wide agreed interval (a busy
  // host: the midpoint 300 ms away means nothing), and the distance to the nearer bound outside.
  assert.equal(appliedClockOffsetUs(300_000, 700_000), 0);
  assert.equal(appliedClockOffsetUs(-300_000, 700_000), 0);
  assert.equal(appliedClockOffsetUs(500_000, 200_000), 400_000);
  assert.equal(appliedClockOffsetUs(-500_000, 200_000), -400_000);
  assert.equal(appliedClockOffsetUs(0, 0), 0);
});
