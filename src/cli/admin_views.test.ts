// Proves the edges of `kimberlite-admin views` on data directories written with the storage
// layer's own Journal and Superblock (the clean case, against a live node, is in
// node/committed_replay.test.ts): only committed ops are applied (a journal whose last prepare
// is not yet named committed by any header nor the superblock stops one op short of it); a
// prepare whose body is not a batch stops the replay there, with exit 1, INCOMPLETE and the op
// named; a directory without a superblock is KMB_ERR_NOT_FOUND with exit 1.

import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { constants } from '../core/constants.js';
import { clusterIdFromName, makePrepare, rootPrepare } from '../core/header.js';
import type { Prepare } from '../core/header.js';
import { asClientId, asOp, asReplicaIndex, asRequestNumber, asTimestampUs } from '../core/types.js';
import { asStreamId, asTenantId, asView } from '../core/types.js';
import { encodeCommand } from '../kernel/kernel.js';
import type { Command } from '../kernel/kernel.js';
import { Journal } from '../storage/journal.js';
import { Superblock } from '../storage/superblock.js';
import { encodeBatch } from '../vsr/batch.js';
import type { Request } from '../vsr/batch.js';
import { runAdminCaptured } from './admin_run.test-support.js';
import type { ViewsReport } from './admin_views.js';

const cluster = clusterIdFromName('test');
const clientId = asClientId('cd'.repeat(16));
const audit = { actor: 'tester', reason: '', correlationId: null };

function command(requestNumber: number, body: Command): Request {
  const number = asRequestNumber(requestNumber);
  return { clientId, requestNumber: number, operation: 'command', body: encodeCommand(body) };
}

/** A session, a tenant, a stream, then one append per op. */
function history(appendCount: number): Request[][] {
  const register: Request = {
    clientId,
    requestNumber: asRequestNumber(0),
    operation: 'register',
    body: new Uint8Array(0),
  };
  const tenantId = asTenantId(1);
  const streamId = asStreamId(1);
  const appends = Array.from({ length: appendCount }, (_, i) => [
    command(3 + i, {
      kind: 'append',
      tenantId,
      streamId,
      expectedOffset: null,
      events: [Buffer.from(`event ${i}`)],
      audit,
    }),
  ]);
  return [
    [register, command(1, { kind: 'create_tenant', name: 'acme', audit })],
    [command(2, { kind: 'create_stream', tenantId, name: 's', dataClass: 'PHI', audit })],
    ...appends,
  ];
}

/** Prepares 1..n; each header names the op before it committed, as a primary's do. */
function prepares(batches: Array<Request[] | Uint8Array>): Prepare[] {
  let previous = rootPrepare(cluster);
  return batches.map((batch, index) => {
    const op = index + 1;
    previous = makePrepare(
      {
        replica: asReplicaIndex(0),
        cluster,
        view: asView(0),
        requestCount: batch instanceof Uint8Array ? 1 : batch.length,
        op: asOp(op),
        commit: asOp(op - 1),
        timestampUs: asTimestampUs(1_700_000_000_000_000 + op * 1000),
        parent: previous.header.checksum,
      },
      batch instanceof Uint8Array ? batch : encodeBatch(batch),
    );
    return previous;
  });
}

async function dataDir(records: Prepare[], commit: number): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'kmb-admin-views-'));
  await Superblock.create(dir, {
    cluster,
    clusterName: 'test',
    replica: asReplicaIndex(0),
    replicaCount: 1,
    view: asView(0),
    logView: asView(0),
    commit: asOp(commit),
    clientSessionCountMax: constants.clientSessionCountMax,
  });
  const journal = await Journal.open({ dir, cluster });
  for (const record of records) await journal.append(record);
  await journal.close();
  return dir;
}

async function viewsJson(dir: string): Promise<{ code: number; report: ViewsReport }> {
  const run = await runAdminCaptured(['views', '--data-dir', dir, '--json']);
  return { code: run.code, report: JSON.parse(run.stdout) as ViewsReport };
}

test('only committed ops apply: the newest prepare, not named committed, does not', async (t) => {
  const dir = await dataDir(prepares(history(3)), 0);
  t.after(() => rm(dir, { recursive: true, force: true }));
  const { code, report } = await viewsJson(dir);
  assert.equal(code, 0);
  assert.equal(report.journal_op_max, 5);
  assert.equal(report.committed_op, 4, 'the last header names op 4 committed');
  assert.equal(report.complete, true);
  assert.equal(report.views[0]?.name, 'stream_index');
  assert.equal(report.views[0]?.applied_op, 4);
  // With the superblock naming op 5 committed, the last op is applied too, and the digest moves.
  const all = await dataDir(prepares(history(3)), 5);
  t.after(() => rm(all, { recursive: true, force: true }));
  const whole = await viewsJson(all);
  assert.equal(whole.report.views[0]?.applied_op, 5);
  assert.notEqual(whole.report.views[0]?.digest, report.views[0]?.digest);
});

test('a prepare body that is not a batch stops the replay there: INCOMPLETE, exit 1', async (t) => {
  const batches: Array<Request[] | Uint8Array> = history(3);
  batches[2] = new Uint8Array([0xff, 0xff, 0xff]);
  const dir = await dataDir(prepares(batches), 5);
  t.after(() => rm(dir, { recursive: true, force: true }));
  const { code, report } = await viewsJson(dir);
  assert.equal(code, 1);
  assert.equal(report.complete, false);
  assert.match(report.problem ?? '', /^op 3: the prepare body does not decode as a batch/);
  assert.equal(report.views[0]?.applied_op, 2);
  const text = await runAdminCaptured(['views', '--data-dir', dir]);
  assert.equal(text.code, 1);
  assert.match(text.stdout, /Views result: INCOMPLETE, op 3: /);
});

test('a directory without a superblock is KMB_ERR_NOT_FOUND', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'kmb-admin-views-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const run = await runAdminCaptured(['views', '--data-dir', dir]);
  assert.equal(run.code, 1);
  assert.match(run.stderr, /KMB_ERR_NOT_FOUND/);
});
