// Proves `kimberlite-admin verify` on real data directories written with the storage layer's own
// Journal and Superblock: a clean log passes (exit 0) with the replayed state summarised; a
// flipped byte in a record is reported by the storage check with its segment file, byte
// position and op (exit 1), and replay stops short of it; a prepare whose body is not a batch,
// a command that does not decode and a timestamp that goes backwards are reported by the
// kernel replay with their place; and usage mistakes exit 2. Nothing is written by verify: the
// data directory's files are byte-for-byte the same afterwards.

import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { constants } from '../core/constants.js';
import { clusterIdFromName, headerSizeBytes, makePrepare, rootPrepare } from '../core/header.js';
import type { Prepare } from '../core/header.js';
import { asClientId, asOp, asReplicaIndex, asRequestNumber, asTimestampUs } from '../core/types.js';
import { asStreamId, asTenantId, asView } from '../core/types.js';
import { encodeCommand } from '../kernel/kernel.js';
import type { Command } from '../kernel/kernel.js';
import { Journal } from '../storage/journal.js';
import { segmentHeaderSizeBytes } from '../storage/segment_header.js';
import { Superblock } from '../storage/superblock.js';
import { encodeBatch } from '../vsr/batch.js';
import type { Request } from '../vsr/batch.js';
import { runAdminCaptured } from './admin_run.test-support.js';

const cluster = clusterIdFromName('test');
const clientId = asClientId('ab'.repeat(16));
const audit = { actor: 'tester', reason: '', correlationId: null };
const timestampUsBase = 1_700_000_000_000_000;

function command(requestNumber: number, body: Command | Uint8Array): Request {
  const bytes = body instanceof Uint8Array ? body : encodeCommand(body);
  return {
    clientId,
    requestNumber: asRequestNumber(requestNumber),
    operation: 'command',
    body: bytes,
  };
}

/** The requests of a small, valid history: a session, a tenant, a stream, two appends. */
function history(): Request[][] {
  const register: Request = {
    clientId,
    requestNumber: asRequestNumber(0),
    operation: 'register',
    body: new Uint8Array(0),
  };
  const tenantId = asTenantId(1);
  const streamId = asStreamId(1);
  const events = (...texts: string[]): Uint8Array[] => texts.map((t) => Buffer.from(t));
  return [
    [register, command(1, { kind: 'create_tenant', name: 'acme', audit })],
    [command(2, { kind: 'create_stream', tenantId, name: 's', dataClass: 'PHI', audit })],
    [
      command(3, {
        kind: 'append',
        tenantId,
        streamId,
        expectedOffset: null,
        events: events('a', 'b'),
        audit,
      }),
    ],
    [
      command(4, {
        kind: 'append',
        tenantId,
        streamId,
        expectedOffset: null,
        events: events('c'),
        audit,
      }),
    ],
  ];
}

function prepares(batches: Array<Request[] | Uint8Array>, timestamps?: number[]): Prepare[] {
  let previous = rootPrepare(cluster);
  return batches.map((batch, index) => {
    const op = index + 1;
    const body = batch instanceof Uint8Array ? batch : encodeBatch(batch);
    previous = makePrepare(
      {
        replica: asReplicaIndex(0),
        cluster,
        view: asView(0),
        requestCount: batch instanceof Uint8Array ? 1 : batch.length,
        op: asOp(op),
        commit: asOp(op - 1),
        timestampUs: asTimestampUs(timestamps?.[index] ?? timestampUsBase + op * 1000),
        parent: previous.header.checksum,
      },
      body,
    );
    return previous;
  });
}

async function dataDir(records: Prepare[]): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'kmb-admin-'));
  const state = {
    cluster,
    clusterName: 'test',
    replica: asReplicaIndex(0),
    replicaCount: 1,
    view: asView(0),
    logView: asView(0),
    commit: asOp(records.length),
    clientSessionCountMax: constants.clientSessionCountMax,
  };
  await Superblock.create(dir, state);
  const journal = await Journal.open({ dir, cluster });
  for (const record of records) await journal.append(record);
  await journal.close();
  return dir;
}

const admin = runAdminCaptured;

async function snapshot(dir: string): Promise<Map<string, Buffer>> {
  const files = new Map<string, Buffer>();
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (entry.isFile()) {
      const path = join(entry.parentPath, entry.name);
      files.set(path, await readFile(path));
    }
  }
  return files;
}

async function withDir(records: Prepare[], work: (dir: string) => Promise<void>): Promise<void> {
  const dir = await dataDir(records);
  try {
    await work(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

describe('kimberlite-admin verify', () => {
  it('passes a clean data directory and summarises the replayed state', async () => {
    await withDir(prepares(history()), async (dir) => {
      const before = await snapshot(dir);
      const text = await admin(['verify', '--data-dir', dir]);
      assert.equal(text.code, 0, text.stdout + text.stderr);
      assert.match(text.stdout, /Kernel replay: 4 records, applied through op 4/);
      assert.match(text.stdout, /1 tenants, 1 streams, 3 events/);
      assert.match(text.stdout, /Overall: OK/);
      const json = await admin(['verify', '--data-dir', dir, '--json']);
      assert.equal(json.code, 0);
      const report = JSON.parse(json.stdout);
      assert.equal(report.ok, true);
      assert.equal(report.storage.recordCount, 4);
      assert.deepEqual([report.replay.commandCount, report.replay.eventCount], [4, 3]);
      assert.equal(report.replay.complete, true);
      assert.match(report.replay.stateDigest, /^[0-9a-f]{64}$/);
      assert.deepEqual(await snapshot(dir), before, 'verify wrote nothing');
    });
  });

  it('reports a flipped byte with its segment, position and op', async () => {
    const records = prepares(history());
    await withDir(records, async (dir) => {
      const path = join(dir, 'journal', (await readdir(join(dir, 'journal')))[0] ?? '');
      const bytes = await readFile(path);
      const first = records[0];
      assert.ok(first !== undefined);
      const secondAt = segmentHeaderSizeBytes + headerSizeBytes + first.body.length;
      const index = secondAt + headerSizeBytes + 3;
      bytes[index] = (bytes[index] ?? 0) ^ 0xff;
      await writeFile(path, bytes);
      const text = await admin(['verify', '--data-dir', dir]);
      assert.equal(text.code, 1);
      assert.ok(text.stdout.includes(`byte ${secondAt}, op 2`), text.stdout);
      assert.match(text.stdout, /kernel replay stopped after op 1/);
      assert.match(text.stdout, /Replay result: INCOMPLETE/);
      assert.match(text.stdout, /Overall: CORRUPT/);
      const json = JSON.parse((await admin(['verify', '--data-dir', dir, '--json'])).stdout);
      assert.equal(json.ok, false);
      assert.equal(json.storage.problems[0].op, 2);
      assert.equal(json.storage.problems[0].position, secondAt);
    });
  });

  it('reports bodies that do not decode and timestamps that go backwards', async () => {
    const garbage = new Uint8Array([9, 9, 9]);
    const batches = [...history(), garbage];
    const timestamps = [1, 2, 3, 4, 5].map((op) => timestampUsBase + op * 1000);
    timestamps[3] = timestampUsBase + 1500;
    await withDir(prepares(batches, timestamps), async (dir) => {
      const run = await admin(['verify', '--data-dir', dir, '--json']);
      assert.equal(run.code, 1);
      const report = JSON.parse(run.stdout);
      assert.equal(report.storage.ok, true, 'the bytes themselves are sound');
      const problems = report.replay.problems as Array<{
        segment: string;
        op: number;
        problem: string;
      }>;
      assert.ok(problems.some((p) => p.op === 4 && /timestamp/.test(p.problem)));
      const undecodable = problems.find((p) => p.op === 5);
      assert.match(undecodable?.problem ?? '', /does not decode as a batch/);
      assert.equal(undecodable?.segment, '00000000.kjl');
    });
    const badCommand = [...history(), [command(5, new Uint8Array([77]))]];
    await withDir(prepares(badCommand), async (dir) => {
      const run = await admin(['verify', '--data-dir', dir]);
      assert.equal(run.code, 1);
      assert.match(
        run.stdout,
        /00000000\.kjl, byte \d+, op 5: request 0 .* command does not decode/,
      );
    });
  });

  it('exits 2 on usage mistakes and 1 for a missing directory', async () => {
    const missing = await admin(['verify']);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /^error: KMB_ERR_INVALID_ARGUMENT: .*--data-dir/);
    const nowhere = await admin(['verify', '--data-dir', join(tmpdir(), 'kmb-admin-none-x')]);
    assert.equal(nowhere.code, 1);
    assert.match(nowhere.stdout, /is not a directory/);
  });
});
