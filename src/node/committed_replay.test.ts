// Proves that a view rebuilt from the log equals the live one. A real node runs in-process and
// takes a workload (sessions, a tenant, two streams, concurrent appends batched into shared
// prepares, an append the kernel rejects); its live stream index (fed by the replica's `executed`
// effects) gives the reference position and digest, and /status reports it with lag 0. After the
// node stops, the same index is rebuilt three ways and each must give the same position and
// digest: `kimberlite-admin views` on the data directory (which must leave every file byte for
// byte as it was), a ViewHost.rebuild over committed_replay's ops from the journal, and a
// catch-up of an index that already holds the first half of the ops (fed only the ops above
// its position, while the kernel is replayed from op 1).

import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { toHex } from '../core/checksum.js';
import { clusterIdFromName } from '../core/header.js';
import { asOffset, asStreamId, asTenantId } from '../core/types.js';
import type { ClientId } from '../core/types.js';
import { runAdminCaptured } from '../cli/admin_run.test-support.js';
import type { ViewsReport } from '../cli/admin_views.js';
import { Metrics } from '../observability/metrics.js';
import { silentLogger } from '../observability/logger.js';
import { Journal } from '../storage/journal.js';
import { readSuperblock } from '../storage/superblock.js';
import { sessionBoundOf } from '../storage/superblock_copy.js';
import { RawClient, newClientId } from '../testing/raw_client.js';
import { StreamIndex } from '../views/stream_index.js';
import type { CommittedOp } from '../views/view.js';
import { ViewHost } from '../views/view_host.js';
import { journalCommittedOps } from './committed_replay.js';
import { KimberliteNode } from './node.js';
import { singleNodeConfig } from './test_config.test-support.js';

const audit = { actor: 'test', reason: 'views', correlationId: null };
const sessionCount = 4;
const appendsPerSession = 12;

async function workload(client: RawClient): Promise<void> {
  const admin = newClientId();
  await client.request(admin, 0, null);
  await client.request(admin, 1, { kind: 'create_tenant', name: 'acme', audit });
  for (const [number, name] of [
    [2, 'a'],
    [3, 'b'],
  ] as const) {
    const tenantId = asTenantId(1);
    await client.request(admin, number, {
      kind: 'create_stream',
      tenantId,
      name,
      dataClass: 'PHI',
      audit,
    });
  }
  const sessions: ClientId[] = Array.from({ length: sessionCount }, () => newClientId());
  await Promise.all(sessions.map((id) => client.request(id, 0, null)));
  await Promise.all(
    sessions.map(async (id, s) => {
      for (let n = 1; n <= appendsPerSession; n++) {
        const events = Array.from({ length: 1 + ((n + s) % 3) }, (_, e) =>
          new TextEncoder().encode(`session ${s} append ${n} event ${e}`),
        );
        const streamId = asStreamId(1 + ((n + s) % 2));
        const append = { kind: 'append', tenantId: asTenantId(1), streamId, events } as const;
        const answer = await client.request(id, n, { ...append, expectedOffset: null, audit });
        assert.equal(answer.kind, 'reply');
      }
    }),
  );
  // Rejected by the kernel (stream b is not empty): committed, with no effect on the index.
  const stale = { kind: 'append', tenantId: asTenantId(1), streamId: asStreamId(2) } as const;
  const events = [new Uint8Array([1])];
  await client.request(admin, 4, { ...stale, events, expectedOffset: asOffset(0), audit });
}

async function snapshot(dir: string): Promise<Map<string, string>> {
  const files = new Map<string, string>();
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const path = join(entry.parentPath, entry.name);
    files.set(path, (await readFile(path)).toString('hex'));
  }
  return files;
}

/** The live views of a node. */
function liveViews(node: KimberliteNode): ViewHost {
  return node.viewHost;
}

async function collect(ops: AsyncIterable<CommittedOp>, opMax: number): Promise<CommittedOp[]> {
  const list: CommittedOp[] = [];
  for await (const op of ops) if (op.op <= opMax) list.push(op);
  return list;
}

test('views rebuilt from the journal equal the live ones', async () => {
  const dataDir = await mkdtemp(join(tmpdir(), 'kmb-views-'));
  const config = singleNodeConfig(dataDir, { clientSessionCountMax: 16 });
  const node = await KimberliteNode.start({
    config,
    logger: silentLogger(),
    metrics: new Metrics({ nodeId: 0 }),
  });
  let client: RawClient | null = null;
  try {
    client = await RawClient.connect(node.address);
    await workload(client);
    const live = liveViews(node).view('stream_index');
    assert.ok(live !== undefined, 'the node hosts the stream index');
    const liveOp = live.appliedOp;
    const liveDigest = toHex(live.digest());
    assert.ok(liveOp >= 8, `the workload committed ops (${liveOp})`);
    assert.deepEqual(node.status()['views'], [
      { name: 'stream_index', applied_op: liveOp, lag_ops: 0 },
    ]);
    client.close();
    client = null;
    await node.stop();

    const before = await snapshot(dataDir);
    const json = await runAdminCaptured(['views', '--data-dir', dataDir, '--json']);
    assert.equal(json.code, 0, json.stderr);
    const report = JSON.parse(json.stdout) as ViewsReport;
    assert.equal(report.complete, true);
    assert.equal(report.committed_op, liveOp);
    assert.deepEqual(report.views, [
      { name: 'stream_index', applied_op: liveOp, digest: liveDigest },
    ]);
    const text = await runAdminCaptured(['views', '--data-dir', dataDir]);
    assert.equal(text.code, 0, text.stderr);
    assert.match(
      text.stdout,
      new RegExp(`stream_index\\s+applied op ${liveOp}\\s+digest ${liveDigest}`),
    );
    assert.match(text.stdout, /Views result: OK/);
    assert.deepEqual(await snapshot(dataDir), before, 'views only reads the data directory');

    const superblock = (await readSuperblock(dataDir))?.state;
    assert.ok(superblock !== null && superblock !== undefined);
    const replay = { clientSessionCountMax: sessionBoundOf(superblock), opMax: liveOp };
    const journal = await Journal.open({ dir: dataDir, cluster: clusterIdFromName('test') });
    try {
      const host = new ViewHost([]);
      const rebuilt = new StreamIndex();
      assert.equal(await host.rebuild(rebuilt, journalCommittedOps(journal, replay)), liveOp);
      assert.equal(rebuilt.appliedOp, liveOp);
      assert.equal(toHex(rebuilt.digest()), liveDigest);

      const half = Math.floor(liveOp / 2);
      const partial = new StreamIndex();
      for (const op of await collect(journalCommittedOps(journal, replay), half)) {
        partial.apply(op);
      }
      assert.equal(partial.appliedOp, half);
      assert.notEqual(toHex(partial.digest()), liveDigest);
      const fed = await host.catchUp(partial, journalCommittedOps(journal, replay));
      assert.equal(fed, liveOp - half, 'only the ops above its position are applied');
      assert.equal(toHex(partial.digest()), liveDigest);
    } finally {
      await journal.close();
    }
  } finally {
    client?.close();
    await node.stop();
    await rm(dataDir, { recursive: true, force: true });
  }
});
