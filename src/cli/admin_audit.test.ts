// Proves the audit export round trip on a real data directory written with the storage layer's
// own Journal and Superblock: `audit export` lists every committed command in the range with its
// audit metadata, outcome and chain links, and leaves out the uncommitted last op; `audit
// verify` passes the file offline (exit 0); then a sweep flips single characters all over the
// file (and targeted bytes in a body, a header, an actor, an event link and a stream anchor)
// and verify fails every time (exit 1), naming the entry that was changed. A middle range is
// anchored by the stream's link before it and verifies on its own; usage mistakes exit 2; a
// corrupt data directory is refused; ISO-8601 parsing follows docs/audit.md.

import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { constants } from '../core/constants.js';
import { clusterIdFromName, headerSizeBytes, makePrepare, rootPrepare } from '../core/header.js';
import type { Prepare } from '../core/header.js';
import { asClientId, asOp, asReplicaIndex, asRequestNumber, asTimestampUs } from '../core/types.js';
import { asStreamId, asTenantId, asView } from '../core/types.js';
import type { ClientId } from '../core/types.js';
import { encodeCommand } from '../kernel/kernel.js';
import type { Command } from '../kernel/kernel.js';
import { parseAuditTime } from '../node/audit_format.js';
import type { AuditExport } from '../node/audit_format.js';
import { Journal } from '../storage/journal.js';
import { segmentHeaderSizeBytes } from '../storage/segment_header.js';
import { Superblock } from '../storage/superblock.js';
import { encodeBatch } from '../vsr/batch.js';
import type { Request } from '../vsr/batch.js';
import { runAdminCaptured } from './admin_run.test-support.js';

const cluster = clusterIdFromName('audit-test');
const alice = asClientId('ab'.repeat(16));
const stranger = asClientId('cd'.repeat(16));
const dayUs = 86_400_000_000;
const day1Us = Date.UTC(2024, 0, 1) * 1000;
const tenantId = asTenantId(1);
const streamId = asStreamId(1);

function request(client: ClientId, number: number, command: Command | null): Request {
  return {
    clientId: client,
    requestNumber: asRequestNumber(number),
    operation: command === null ? 'register' : 'command',
    body: command === null ? new Uint8Array(0) : encodeCommand(command),
  };
}

function append(events: string[], reason: string, target = streamId): Command {
  const audit = { actor: 'dr.who', reason, correlationId: `corr-${reason}` };
  const data = events.map((text) => Buffer.from(text));
  return { kind: 'append', tenantId, streamId: target, expectedOffset: null, events: data, audit };
}

/** One prepare per day from 2024-01-01, noon UTC; the last is not known to be committed. */
function history(): Request[][] {
  const audit = { actor: 'admin', reason: 'setup', correlationId: null };
  return [
    [request(alice, 0, null), request(alice, 1, { kind: 'create_tenant', name: 'acme', audit })],
    [request(alice, 2, { kind: 'create_stream', tenantId, name: 'p', dataClass: 'PHI', audit })],
    [request(alice, 3, append(['a', 'b'], 'intake'))],
    [request(alice, 4, append(['c'], 'visit')), request(stranger, 1, append(['x'], 'sneak'))],
    [request(alice, 5, append(['d'], 'missing', asStreamId(9)))],
    [request(alice, 6, append(['e'], 'late'))],
  ];
}

function prepares(batches: Request[][]): Prepare[] {
  let previous = rootPrepare(cluster);
  return batches.map((batch, index) => {
    const op = index + 1;
    previous = makePrepare(
      {
        replica: asReplicaIndex(0),
        cluster,
        view: asView(0),
        requestCount: batch.length,
        op: asOp(op),
        commit: asOp(op - 1),
        timestampUs: asTimestampUs(day1Us + index * dayUs + dayUs / 2),
        parent: previous.header.checksum,
      },
      encodeBatch(batch),
    );
    return previous;
  });
}

async function writeDataDir(dir: string, records: Prepare[]): Promise<void> {
  const state = {
    cluster,
    clusterName: 'audit-test',
    replica: asReplicaIndex(0),
    replicaCount: 1,
    view: asView(0),
    logView: asView(0),
    commit: asOp(0),
    clientSessionCountMax: constants.clientSessionCountMax,
  };
  await Superblock.create(dir, state);
  const journal = await Journal.open({ dir, cluster });
  for (const record of records) await journal.append(record);
  await journal.close();
}

const admin = runAdminCaptured;

let dir: string;
let dataDir: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kmb-audit-'));
  dataDir = join(dir, 'data');
  await writeDataDir(dataDir, prepares(history()));
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function exportRange(start: string, end: string, file: string): Promise<AuditExport> {
  const output = join(dir, file);
  const args = ['audit', 'export', '--data-dir', dataDir, '--start', start, '--end', end];
  const result = await admin([...args, '--format', 'json', '--output', output]);
  assert.equal(result.code, 0, result.stderr);
  return JSON.parse(await readFile(output, 'utf8')) as AuditExport;
}

async function verifyText(text: string): Promise<{ code: number; stdout: string }> {
  const file = join(dir, 'tampered.json');
  await writeFile(file, text);
  return admin(['audit', 'verify', file]);
}

describe('kimberlite-admin audit export / verify', () => {
  it('exports committed commands with metadata, outcomes and links; verify passes', async () => {
    const doc = await exportRange('2024-01-01', '2024-12-31', 'all.json');
    assert.equal(doc.source.committed_through_op, 5);
    assert.deepEqual(
      doc.prepares.map((p) => p.op),
      [1, 2, 3, 4, 5],
    );
    assert.equal(doc.chain.anchor_op, 0);
    const visit = doc.prepares[3]?.commands[0];
    assert.equal(visit?.actor, 'dr.who');
    assert.equal(visit?.reason, 'visit');
    assert.equal(visit?.correlation_id, 'corr-visit');
    assert.equal(visit?.client_id, alice);
    assert.equal(visit?.outcome.first_offset, 2);
    assert.equal(visit?.events[0]?.link, visit?.outcome.chain_head);
    assert.equal(doc.prepares[3]?.commands[1]?.outcome.status, 'skipped');
    assert.equal(doc.prepares[4]?.commands[0]?.outcome.code, 'KMB_ERR_STREAM_NOT_FOUND');
    assert.deepEqual(doc.summary, { prepare_count: 5, command_count: 7, event_count: 3 });
    const verified = await admin(['audit', 'verify', join(dir, 'all.json')]);
    assert.equal(verified.code, 0, verified.stdout);
    assert.match(verified.stdout, /5 prepares \(ops 1\.\.5\), 7 commands, 3 events/);
    assert.match(verified.stdout, /Result: OK/);
    const json = await admin(['audit', 'verify', join(dir, 'all.json'), '--json']);
    assert.equal((JSON.parse(json.stdout) as { ok: boolean }).ok, true);
  });

  it('fails verify for a single changed character anywhere in the file', async () => {
    const text = await readFile(join(dir, 'all.json'), 'utf8');
    const positions: number[] = [];
    for (let i = 0; i < text.length; i += 37) if (!/\s/.test(text[i] ?? ' ')) positions.push(i);
    assert.ok(positions.length > 50);
    for (const position of positions) {
      const char = text[position] ?? '';
      const flipped = char === '0' ? '1' : String.fromCharCode(char.charCodeAt(0) ^ 1);
      const tampered = text.slice(0, position) + flipped + text.slice(position + 1);
      const result = await verifyText(tampered);
      assert.equal(result.code, 1, `flip at ${position} (${char}) passed verify`);
      assert.match(result.stdout, /Result: FAILED/);
    }
  });

  it('names the first bad entry for targeted tampering', async () => {
    const original = await readFile(join(dir, 'all.json'), 'utf8');
    const doc = JSON.parse(original) as AuditExport;
    const cases: Array<[(d: AuditExport) => void, RegExp]> = [
      [(d) => flipBase64(d.prepares[2]!), /First bad entry: prepares\[2\] \(op 3\): body/],
      [(d) => (d.prepares[1]!.header = flipHex(d.prepares[1]!.header, 150)), /prepares\[1\]/],
      [(d) => (d.prepares[3]!.commands[0]!.actor = 'dr.whp'), /op 4\) command 0: actor/],
      [(d) => (d.prepares[3]!.commands[0]!.events[0]!.link = '0'.repeat(64)), /event 0: link/],
    ];
    for (const [tamper, expected] of cases) {
      const copy = structuredClone(doc);
      tamper(copy);
      const result = await verifyText(JSON.stringify(copy, null, 1));
      assert.equal(result.code, 1);
      assert.match(result.stdout, expected);
    }
  });

  it('anchors a middle range at the stream link before it and verifies it alone', async () => {
    const doc = await exportRange('2024-01-04', '2024-01-04', 'day4.json');
    assert.deepEqual(
      doc.prepares.map((p) => p.op),
      [4],
    );
    assert.equal(doc.chain.anchor_op, 3);
    assert.deepEqual(
      doc.streams.map((s) => [s.stream_id, s.offset_before]),
      [[1, 2]],
    );
    const all = JSON.parse(await readFile(join(dir, 'all.json'), 'utf8')) as AuditExport;
    assert.equal(doc.streams[0]?.link_before, all.prepares[2]?.commands[0]?.outcome.chain_head);
    assert.equal((await admin(['audit', 'verify', join(dir, 'day4.json')])).code, 0);
    const bad = structuredClone(doc);
    bad.streams[0]!.link_before = flipHex(bad.streams[0]!.link_before, 3);
    const result = await verifyText(JSON.stringify(bad));
    assert.equal(result.code, 1);
    assert.match(result.stdout, /First bad entry: prepares\[0\] \(op 4\) command 0 event 0: link/);
  });

  it('refuses usage mistakes (exit 2) and a corrupt data directory (exit 1)', async () => {
    const base = ['audit', 'export', '--data-dir', dataDir, '--output', join(dir, 'x.json')];
    const usage = [
      ['--start', '2024-13-01', '--end', '2024-12-31'],
      ['--start', '2024-02-01', '--end', '2024-01-01'],
      ['--start', '2024-01-01', '--end', '2024-12-31', '--format', 'csv'],
    ];
    for (const flags of usage) assert.equal((await admin([...base, ...flags])).code, 2);
    assert.equal((await admin(['audit', 'verify', join(dir, 'nope.json')])).code, 2);
    const broken = join(dir, 'broken');
    await writeDataDir(broken, prepares(history()));
    const [segment] = await readdir(join(broken, 'journal'));
    const segmentPath = join(broken, 'journal', segment ?? '');
    const bytes = await readFile(segmentPath);
    const bodyPosition = segmentHeaderSizeBytes + headerSizeBytes + 6;
    bytes[bodyPosition] = (bytes[bodyPosition] ?? 0) ^ 0x01;
    await writeFile(segmentPath, bytes);
    const args = ['audit', 'export', '--data-dir', broken, '--start', '2024-01-01'];
    const refused = await admin([...args, '--end', '2025-01-01', '--output', '-']);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /KMB_ERR_STORAGE_CORRUPT/);
  });
});

function flipHex(hex: string, index: number): string {
  const char = hex[index] === '0' ? '1' : '0';
  return hex.slice(0, index) + char + hex.slice(index + 1);
}

function flipBase64(prepare: { body: string }): void {
  const bytes = Buffer.from(prepare.body, 'base64');
  bytes[bytes.length - 1] = (bytes[bytes.length - 1] ?? 0) ^ 0x01;
  prepare.body = bytes.toString('base64');
}

describe('parseAuditTime', () => {
  it('reads ISO-8601 dates and date-times, UTC unless an offset is given', () => {
    assert.equal(parseAuditTime('2024-01-01', false), day1Us);
    assert.equal(parseAuditTime('2024-01-01', true), day1Us + dayUs);
    assert.equal(parseAuditTime('2024-01-01T10:00:00Z', true), day1Us + 10 * 3_600_000_000);
    assert.equal(parseAuditTime('2024-01-01T10:00', false), day1Us + 10 * 3_600_000_000);
    assert.equal(parseAuditTime('2024-01-01T12:00:00+02:00', false), day1Us + 10 * 3_600_000_000);
    assert.equal(parseAuditTime('2024-01-01T00:00:00.000250Z', false), day1Us + 250);
    for (const bad of ['2024-02-30', '2024-01-01T24:00', 'yesterday', '2024-1-1', '']) {
      assert.equal(parseAuditTime(bad, false), null, bad);
    }
  });
});
