// Start-up on damaged data directories, with real processes (issue 14, finding 1). A journal that
// holds less than the superblock's commit number lost acknowledged writes: a single node must
// refuse to start with the very problem `kimberlite-admin verify` reports, and change nothing on
// disk; a cluster replica must start not intact and fetch the lost ops from its peers. A missing
// superblock beside a journal refuses; formatting happens only on an empty directory, or on a
// directory holding no kimberlite data when `--format` says so.

import { strict as assert } from 'node:assert';
import { cp, mkdir, readdir, rm, stat, truncate, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { Harness, parseLogLine } from './harness.js';
import type { LogLine, RunResult } from './harness.js';
import { TestCluster, createStreams, hangTimeoutMs } from './cluster_harness.js';
import { journalDir, readJournal, segmentFiles } from './journal_files.js';

/** Segments of 1 MiB (the smallest allowed), so a few MiB of events fill several. */
const segmentEnv = { KMB_STORAGE_SEGMENT_SIZE_BYTES: String(1024 * 1024) };
const appendCount = 12;
const eventsPerAppend = 250;
const eventSizeBytes = 1000;

function eventText(append: number, index: number): string {
  const name = `e${append}-${index}-`;
  return name + 'x'.repeat(eventSizeBytes - name.length);
}

/** Every file under `dir` with its size, to show that a refused start changed nothing. */
async function snapshot(dir: string): Promise<Record<string, number>> {
  const files: Record<string, number> = {};
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile() || entry.name === 'LOCK') continue;
    const path = join(entry.parentPath, entry.name);
    files[path.slice(dir.length)] = (await stat(path)).size;
  }
  return files;
}

function logLines(run: RunResult): LogLine[] {
  return run.stdout.split('\n').flatMap((text) => parseLogLine(text) ?? []);
}

interface Populated {
  readonly dataDir: string;
  readonly tenantId: number;
  readonly streamId: number;
}

/** A single node with 3000 events in at least 3 segments, stopped cleanly (superblock written). */
async function populate(h: Harness): Promise<Populated> {
  const dataDir = await h.tempDir();
  const server = await h.startServer({ dataDir, env: segmentEnv });
  const db = await h.connect({ addresses: [server.address], requestTimeoutMs: 20_000 });
  const tenant = await db.createTenant('damage');
  const stream = await db.createStream({ tenantId: tenant.tenantId, name: 'events' });
  for (let append = 0; append < appendCount; append++) {
    const events = Array.from({ length: eventsPerAppend }, (_, i) => eventText(append, i));
    await db.append({ tenantId: tenant.tenantId, streamId: stream.streamId, events });
  }
  await db.close();
  const status = await server.stop();
  assert.equal(status.code, 0, server.describe());
  assert.ok((await segmentFiles(dataDir)).length >= 3, 'the journal spans at least 3 segments');
  return { dataDir, tenantId: tenant.tenantId, streamId: stream.streamId };
}

/** verify's problems, as text, after checking that it calls the directory corrupt. */
async function verifyProblems(h: Harness, dataDir: string): Promise<string[]> {
  const run = await h.runAdmin(['verify', '--data-dir', dataDir, '--json']);
  const report = JSON.parse(run.stdout) as { ok: boolean; storage: { problems: unknown[] } };
  assert.equal(report.ok, false, `verify calls the damaged directory corrupt:\n${run.stdout}`);
  assert.notEqual(run.code, 0);
  return report.storage.problems.map((problem) => (problem as { problem: string }).problem);
}

const damages: ReadonlyArray<{ name: string; apply: (dataDir: string) => Promise<void> }> = [
  {
    name: 'the last segment file deleted',
    apply: async (dataDir) => {
      const last = (await segmentFiles(dataDir)).at(-1) ?? '';
      await unlink(join(journalDir(dataDir), last));
    },
  },
  {
    name: 'the last segment truncated to its 64-byte header',
    apply: async (dataDir) => {
      const last = (await segmentFiles(dataDir)).at(-1) ?? '';
      await truncate(join(journalDir(dataDir), last), 64);
    },
  },
  {
    name: 'the journal directory deleted',
    apply: (dataDir) => rm(journalDir(dataDir), { recursive: true }),
  },
];

test('a single node refuses a journal shorter than its superblock commit', async (t) => {
  // Proves that a single node never takes lost committed records for a torn tail: a node with
  // 3000 events in 3+ segments is stopped cleanly (its superblock records the commit), then each
  // of three copies of its directory is damaged (last segment deleted / truncated to 64 bytes /
  // journal directory deleted). For each, `kimberlite-admin verify` reports CORRUPT, and the
  // server exits 1 without serving; its output contains verify's problem verbatim, the data
  // directory and `kimberlite-admin verify`, and an ERROR line names the superblock commit, the
  // journal's last valid op and the data directory. The directory is byte-for-byte the same
  // size afterwards (nothing was cut, created or reformatted). The undamaged original, started
  // with --format (which never touches a kimberlite directory), still serves all 3000 events.
  const h = new Harness(t);
  const populated = await populate(h);
  for (const damage of damages) {
    const dataDir = await h.tempDir();
    await cp(populated.dataDir, dataDir, { recursive: true });
    await damage.apply(dataDir);
    const problems = await verifyProblems(h, dataDir);
    assert.equal(problems.length, 1, `${damage.name}: one problem\n${problems.join('\n')}`);
    const before = await snapshot(dataDir);

    const start = await h.runServerToExit({ dataDir, env: segmentEnv });
    const output = `${start.stdout}\n${start.stderr}`;
    assert.equal(start.code, 1, `${damage.name}: the server exits 1\n${output}`);
    assert.ok(output.includes(problems[0] ?? '?'), `${damage.name}: verify's words\n${output}`);
    assert.match(start.stderr, /KMB_ERR_STORAGE_CORRUPT/);
    assert.ok(start.stderr.includes(dataDir), `${damage.name}: names the directory`);
    assert.match(start.stderr, /kimberlite-admin verify/);
    assert.match(start.stderr, /backup/);
    const refusal = logLines(start).find((line) => line.fields['superblock_commit'] !== undefined);
    assert.ok(refusal !== undefined, `${damage.name}: a log line with the numbers\n${output}`);
    assert.equal(refusal.level, 'ERROR');
    assert.equal(refusal.fields['data_dir'], dataDir);
    assert.equal(typeof refusal.fields['journal_op_max'], 'number');
    assert.ok(
      Number(refusal.fields['journal_op_max']) < Number(refusal.fields['superblock_commit']),
    );
    assert.deepEqual(await snapshot(dataDir), before, `${damage.name}: nothing changed on disk`);
    t.diagnostic(`${damage.name}: ${problems[0]}`);
  }

  const server = await h.startServer({
    dataDir: populated.dataDir,
    env: segmentEnv,
    args: ['--format'],
  });
  assert.ok(
    server.lines.some((line) => /--format ignored/.test(line.message)),
    server.describe(),
  );
  const db = await h.connect({ addresses: [server.address] });
  const [summary] = await db.listStreams(populated.tenantId);
  assert.equal(summary?.nextOffset, appendCount * eventsPerAppend);
  await db.close();
});

test('a missing superblock beside a journal refuses; a foreign directory needs --format', async (t) => {
  // Proves that start-up formats only what holds no kimberlite data. (1) superblock.kmb deleted
  // from a populated directory: the server exits 1 with KMB_ERR_STORAGE_CORRUPT naming the
  // missing superblock, and does not create one (the journal is untouched); with --format too.
  // (2) A directory holding someone else's file: the server exits 1 with
  // KMB_ERR_CONFIG_INVALID naming the file and --format, and writes nothing. (3) The same
  // directory with --format: the server formats it (a WARN line says so), serves, and the
  // foreign file is still there.
  const h = new Harness(t);
  const populated = await populate(h);
  await unlink(join(populated.dataDir, 'superblock.kmb'));
  const before = await snapshot(populated.dataDir);
  for (const args of [[], ['--format']]) {
    const start = await h.runServerToExit({ dataDir: populated.dataDir, args });
    const output = `${start.stdout}\n${start.stderr}`;
    assert.equal(start.code, 1, `missing superblock ${args.join(' ')}: exits 1\n${output}`);
    assert.match(start.stderr, /KMB_ERR_STORAGE_CORRUPT/);
    assert.match(start.stderr, /superblock/);
    assert.deepEqual(await snapshot(populated.dataDir), before, 'nothing written');
  }

  const foreign = await h.tempDir();
  await mkdir(join(foreign, 'photos'));
  await writeFile(join(foreign, 'notes.txt'), 'not a database\n');
  const refused = await h.runServerToExit({ dataDir: foreign });
  assert.equal(refused.code, 1, `${refused.stdout}\n${refused.stderr}`);
  assert.match(refused.stderr, /KMB_ERR_CONFIG_INVALID/);
  assert.match(refused.stderr, /notes\.txt/);
  assert.match(refused.stderr, /--format/);
  const names = (await readdir(foreign)).filter((name) => name !== 'LOCK').sort();
  assert.deepEqual(names, ['notes.txt', 'photos'], 'nothing was created');

  const formatted = await h.startServer({ dataDir: foreign, args: ['--format'] });
  const line = formatted.lines.find((l) => /Formatting/.test(l.message));
  assert.ok(line !== undefined, formatted.describe());
  assert.equal(line.level, 'WARN');
  const db = await h.connect({ addresses: [formatted.address] });
  await db.createTenant('fresh');
  await db.close();
  assert.ok((await readdir(foreign)).includes('notes.txt'));
});

test(
  'a cluster backup whose last segment was deleted repairs it from its peers',
  { timeout: hangTimeoutMs },
  async (t) => {
    // Proves the cluster half of the rule: three replicas with 1 MiB segments hold 2500 events
    // in several segments each; a backup is stopped cleanly and its last segment, which holds
    // committed records, is deleted (verify then reports the superblock commit beyond the
    // journal). Restarted, the backup starts (it does not refuse: its peers hold every committed
    // op), logs an ERROR naming the superblock commit, the journal's last op and the data
    // directory, and repairs; meanwhile more events are appended. In the end every replica is
    // normal at the same op, `verify` is clean on every data directory with one log head, and
    // every acknowledged event is read back in order.
    const h = new Harness(t);
    const cluster = await TestCluster.start(h, { name: 'damage', env: segmentEnv });
    const { leader } = await cluster.waitForLeader();
    const victim = (leader + 1) % cluster.size;
    const [target] = await createStreams(cluster, 'damage', 1);
    assert.ok(target !== undefined);
    const db = await cluster.connect({ requestTimeoutMs: 20_000 });
    const acked: string[] = [];
    const appendAll = async (from: number, to: number): Promise<void> => {
      for (let append = from; append < to; append++) {
        const events = Array.from({ length: eventsPerAppend }, (_, i) => eventText(append, i));
        const result = await db.append({ ...target, events });
        assert.equal(result.firstOffset, acked.length);
        acked.push(...events);
      }
    };
    await appendAll(0, 10);
    await cluster.waitForConvergence();
    await cluster.stop(victim);
    const dataDir = cluster.dataDirs[victim] ?? '';
    const segments = await segmentFiles(dataDir);
    const last = segments.at(-1) ?? '';
    const lost = (await readJournal(dataDir)).filter((record) => record.segment === last);
    assert.ok(segments.length >= 2 && lost.length > 0, 'the last segment holds records');
    await unlink(join(journalDir(dataDir), last));
    const before = await cluster.verify(victim);
    assert.equal(before.ok, false, 'verify sees the lost records');
    assert.match(before.run.stdout, /is beyond the journal's last valid op/);

    const restarted = await cluster.restart(victim);
    const line = await restarted.waitForLine((l) => l.fields['superblock_commit'] !== undefined);
    assert.equal(line.level, 'ERROR');
    assert.equal(line.fields['data_dir'], dataDir);
    assert.equal(line.fields['journal_op_max'], (lost[0]?.op ?? 0) - 1);
    assert.ok(Number(line.fields['superblock_commit']) >= (lost[0]?.op ?? Infinity));
    await appendAll(10, 12);
    await cluster.waitForConvergence();
    const page = await db.read({ ...target });
    const events = page.events.map((event) => Buffer.from(event.data).toString('utf8'));
    assert.equal(events.length, acked.length);
    assert.ok(
      events.every((event, index) => event === acked[index]),
      'every acknowledged event, in order',
    );
    await db.close();
    await cluster.stopAllAndVerifySameHead();
    t.diagnostic(`replica ${victim} lost ${lost.length} records of ${last} and repaired them`);
  },
);
