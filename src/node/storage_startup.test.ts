// Tests of start-up's judgement of the data directory (storage_startup.ts): which directories are
// formatted, which are refused and with which code, that formatting makes the journal directory
// durable before the superblock exists, and how a journal missing committed records is judged:
// refused alone, not intact (and logged with its numbers) with peers. Real files in temp dirs.

import assert from 'node:assert/strict';
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';

import { constants } from '../core/constants.js';
import { errorCodes, KmbError } from '../core/errors.js';
import { asOp } from '../core/types.js';
import { createLogger } from '../observability/logger.js';
import type { Logger } from '../observability/logger.js';
import {
  CommittedRecordsMissingError,
  journalDirMissingProblem,
} from '../storage/data_dir_rules.js';
import { readFile } from 'node:fs/promises';
import { sha256, sha256SizeBytes } from '../core/checksum.js';
import { realFileIO } from '../storage/file_io.js';
import { Superblock, superblockPath } from '../storage/superblock.js';
import { clientSessionCountUnrecorded } from '../storage/superblock_copy.js';
import { Journal } from '../storage/journal.js';
import { RecordingFileIO } from '../storage/recording_file_io.js';
import { makeChain, patternBodies, testCluster, withTempDir } from '../storage/test_support.js';
import {
  checkJournalDir,
  decideFormat,
  foreignEntriesListedMax,
  inspectDataDir,
  judgeJournal,
  openOrFormatSuperblock,
} from './storage_startup.js';
import type { DataDirContents, StorageStartOptions } from './storage_startup.js';

interface Captured {
  readonly logger: Logger;
  readonly lines: Array<{ level: string; message: string; fields: Record<string, unknown> }>;
}

/** Rewrites every superblock copy's session bound (offset 58, u32) and its checksum. */
async function rewriteSessionBound(dir: string, bound: number): Promise<void> {
  const bytes = await readFile(superblockPath(dir));
  for (let index = 0; index < constants.superblockCopyCount; index++) {
    const copy = bytes.subarray(
      index * constants.superblockCopySizeBytes,
      (index + 1) * constants.superblockCopySizeBytes,
    );
    copy.writeUInt32LE(bound, 58);
    copy.set(sha256(copy.subarray(sha256SizeBytes)), 0);
  }
  await writeFile(superblockPath(dir), bytes);
}

function capture(): Captured {
  const lines: Captured['lines'] = [];
  const logger = createLogger({
    directives: 'info',
    env: {},
    destination: { write: (line: string) => lines.push(JSON.parse(line)) },
  });
  return { logger, lines };
}

function startOptions(dataDir: string, logger: Logger, format = false): StorageStartOptions {
  return {
    dataDir,
    clusterName: 'test',
    nodeId: 0,
    replicaCount: 1,
    clientSessionCountMax: constants.clientSessionCountMax,
    format,
    logger,
  };
}

const empty: DataDirContents = {
  superblockPresent: false,
  journalDirPresent: false,
  segmentCount: 0,
  foreign: [],
};

describe('start-up: formatting', () => {
  it('decides format, refuse or open from what the directory holds', () => {
    // Proves the decision table of docs/operations.md: empty → format; foreign files → refused
    // with KMB_ERR_CONFIG_INVALID naming them (at most foreignEntriesListedMax) and --format,
    // or formatted with --format; segment files without a superblock → KMB_ERR_STORAGE_CORRUPT
    // even with --format; a superblock → open.
    const dataDir = '/d';
    const decide = (contents: Partial<DataDirContents>, format = false) =>
      decideFormat({ ...empty, ...contents }, { dataDir, format });
    assert.deepEqual(decide({}), { kind: 'format', reason: 'empty' });
    assert.deepEqual(decide({ journalDirPresent: true }), { kind: 'format', reason: 'empty' });
    assert.deepEqual(decide({ superblockPresent: true }, true), { kind: 'open' });
    const names = Array.from({ length: foreignEntriesListedMax + 5 }, (_, i) => `f${i}`);
    const refused = decide({ foreign: names });
    assert.equal(refused.kind, 'refuse');
    assert.ok(refused.kind === 'refuse' && refused.error.code === errorCodes.config_invalid);
    assert.match(refused.error.message, /f0, f1/);
    assert.match(refused.error.message, /and 5 more/);
    assert.match(refused.error.message, /--format/);
    assert.deepEqual(decide({ foreign: names }, true), { kind: 'format', reason: 'format_flag' });
    for (const format of [false, true]) {
      const lost = decide({ journalDirPresent: true, segmentCount: 2, foreign: ['x'] }, format);
      assert.ok(lost.kind === 'refuse' && lost.error.code === errorCodes.storage_corrupt);
      assert.match(lost.error.message, /superblock file is missing/);
    }
  });

  it('counts only what the server did not create itself as foreign', async () => {
    // Proves inspectDataDir ignores the LOCK file, assertion-failure records, a superblock
    // temporary file and an empty journal directory, and names everything else.
    await withTempDir(async (dir) => {
      for (const name of ['LOCK', 'assertion_failures.json', 'superblock.kmb.tmp']) {
        await writeFile(join(dir, name), 'x');
      }
      await mkdir(join(dir, 'journal'));
      assert.deepEqual(await inspectDataDir(dir), { ...empty, journalDirPresent: true });
      await writeFile(join(dir, 'notes.txt'), 'x');
      await mkdir(join(dir, 'photos'));
      assert.deepEqual((await inspectDataDir(dir)).foreign, ['notes.txt', 'photos']);
    });
  });

  it('records the client session bound at format and refuses another one later', async () => {
    // Proves the bound is fixed for the life of the data: formatting with 3 records 3; opening
    // with 4 is refused with KMB_ERR_CONFIG_INVALID naming both values and changes nothing;
    // opening with 3 again succeeds.
    await withTempDir(async (dir) => {
      const { logger } = capture();
      const options = { ...startOptions(dir, logger), clientSessionCountMax: 3 };
      const first = await openOrFormatSuperblock(options);
      assert.equal(first.superblock.state.clientSessionCountMax, 3);
      await assert.rejects(
        openOrFormatSuperblock({ ...options, clientSessionCountMax: 4 }),
        (error) => {
          assert.ok(error instanceof KmbError);
          assert.equal(error.code, errorCodes.config_invalid);
          assert.match(error.message, /formatted with \[consensus\] client_sessions_max 3/);
          assert.match(error.message, /configured as 4/);
          return true;
        },
      );
      const again = await openOrFormatSuperblock(options);
      assert.equal(again.formatted, false);
      assert.equal(again.superblock.state.clientSessionCountMax, 3);
    });
  });

  it('records the configured bound once in a superblock from before the bound was recorded', async () => {
    // Proves the upgrade path: a superblock whose bound is unrecorded (0, as every superblock
    // written before the field) opens with any configured bound, which is then recorded and
    // logged; a later start with another bound is refused like any recorded one.
    await withTempDir(async (dir) => {
      const { logger, lines } = capture();
      const options = { ...startOptions(dir, logger), clientSessionCountMax: 7 };
      const formatted = await openOrFormatSuperblock(options);
      await rewriteSessionBound(dir, clientSessionCountUnrecorded);
      assert.equal(formatted.formatted, true);
      const opened = await openOrFormatSuperblock({ ...options, clientSessionCountMax: 9 });
      assert.equal(opened.formatted, false);
      assert.equal(opened.superblock.state.clientSessionCountMax, 9);
      assert.ok(
        lines.some(
          (line) => line.message === 'Recorded the client session bound in the superblock',
        ),
      );
      const reopened = await Superblock.open(dir);
      assert.equal(reopened?.state.clientSessionCountMax, 9);
      await assert.rejects(
        openOrFormatSuperblock({ ...options, clientSessionCountMax: 7 }),
        (error) => {
          assert.ok(error instanceof KmbError);
          assert.equal(error.code, errorCodes.config_invalid);
          return true;
        },
      );
    });
  });

  it('formats: the journal directory is durable before the superblock exists', async () => {
    // Proves the order that makes "a superblock without a journal directory" always damage:
    // mkdir journal/ and fsync the data directory, then the superblock's create (its rename).
    // A second start opens it (formatted false); with --format it says the flag was ignored.
    await withTempDir(async (dir) => {
      const io = new RecordingFileIO(realFileIO);
      const { logger, lines } = capture();
      const first = await openOrFormatSuperblock({ ...startOptions(dir, logger), io });
      assert.equal(first.formatted, true);
      const kinds = io.events.map((e) => `${e.kind} ${e.path.slice(dir.length)}`);
      const mkdirAt = kinds.indexOf('mkdir /journal');
      const renameAt = kinds.indexOf('rename /superblock.kmb');
      assert.ok(mkdirAt >= 0 && renameAt > mkdirAt, kinds.join('\n'));
      assert.ok(kinds.slice(mkdirAt, renameAt).includes('fsync_dir '), kinds.join('\n'));
      assert.equal(lines[0]?.message, 'Formatting new data directory');
      assert.equal(lines[0]?.fields['reason'], 'empty');
      const again = await openOrFormatSuperblock(startOptions(dir, logger, true));
      assert.equal(again.formatted, false);
      assert.match(lines.at(-1)?.message ?? '', /--format ignored/);
    });
  });

  it('refuses a foreign directory without writing, and formats it with --format', async () => {
    // Proves nothing is created in a refused directory, and --format adds superblock.kmb and
    // journal/ beside the foreign file, logging a WARN that names it.
    await withTempDir(async (dir) => {
      await writeFile(join(dir, 'notes.txt'), 'mine');
      const { logger, lines } = capture();
      await assert.rejects(openOrFormatSuperblock(startOptions(dir, logger)), (error) => {
        assert.ok(error instanceof KmbError && error.code === errorCodes.config_invalid);
        return true;
      });
      assert.deepEqual(await readdir(dir), ['notes.txt']);
      const formatted = await openOrFormatSuperblock(startOptions(dir, logger, true));
      assert.equal(formatted.formatted, true);
      assert.deepEqual((await readdir(dir)).sort(), ['journal', 'notes.txt', 'superblock.kmb']);
      const line = lines.find((l) => /Formatting a non-empty/.test(l.message));
      assert.equal(line?.level, 'WARN');
      assert.equal(line?.fields['foreign_entries'], 'notes.txt');
    });
  });
});

describe('start-up: the journal against the superblock', () => {
  it('refuses a missing journal directory alone; with peers starts not intact', async () => {
    // Proves checkJournalDir: a superblock with commit 3 and no journal directory. Alone:
    // CommittedRecordsMissingError with verify's problem, nothing created. With peers: false,
    // and an ERROR line with superblock_commit 3, journal_op_max 0 and the data directory.
    await withTempDir(async (dir) => {
      const { logger, lines } = capture();
      const { superblock } = await openOrFormatSuperblock(startOptions(dir, logger));
      await superblock.write({ commit: asOp(3) });
      await rm(join(dir, 'journal'), { recursive: true });
      const check = { dataDir: dir, superblock, formatted: false, logger };
      await assert.rejects(checkJournalDir({ ...check, alone: true }), (error) => {
        assert.ok(error instanceof CommittedRecordsMissingError);
        assert.ok(error.message.includes(journalDirMissingProblem(3)), error.message);
        return true;
      });
      assert.deepEqual(await readdir(dir), ['superblock.kmb']);
      assert.equal(await checkJournalDir({ ...check, alone: false }), false);
      const line = lines.at(-1);
      assert.equal(line?.level, 'ERROR');
      assert.deepEqual(
        [
          line?.fields['superblock_commit'],
          line?.fields['journal_op_max'],
          line?.fields['data_dir'],
        ],
        [3, 0, dir],
      );
      assert.equal(line?.fields['action'], 'repair_from_peers');
    });
  });

  it('judges a journal below the superblock commit not intact, and logs it', async () => {
    // Proves judgeJournal: a journal holding ops 1..4 under a superblock commit of 4 is intact;
    // under a commit of 6 (opened with 'cut', as a replica with peers opens it) it is not, and
    // an ERROR line names commit 6, op 4 and the data directory.
    await withTempDir(async (dir) => {
      const { logger, lines } = capture();
      const { superblock } = await openOrFormatSuperblock(startOptions(dir, logger));
      const writing = await Journal.open({ dir, cluster: testCluster });
      for (const prepare of makeChain(patternBodies(4, 10))) await writing.append(prepare);
      await writing.close();
      const journal = await Journal.open({ dir, cluster: testCluster, onCorruption: 'cut' });
      const check = { dataDir: dir, superblock, formatted: false, alone: false, logger };
      await superblock.write({ commit: asOp(4) });
      assert.equal(judgeJournal({ ...check, journal, journalDirPresent: true }), true);
      await superblock.write({ commit: asOp(6) });
      const logged = lines.length;
      assert.equal(judgeJournal({ ...check, journal, journalDirPresent: true }), false);
      const line = lines.at(-1);
      assert.equal(lines.length, logged + 1);
      assert.equal(line?.level, 'ERROR');
      assert.deepEqual(
        [
          line?.fields['superblock_commit'],
          line?.fields['journal_op_max'],
          line?.fields['data_dir'],
        ],
        [6, 4, dir],
      );
      await journal.close();
    });
  });
});
