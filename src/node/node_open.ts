// Start-up's storage steps, in order: create the data directory, open (or format) the
// superblock, check the journal directory against it, start watching free disk space, open the
// journal (a torn tail is cut; corruption refuses to start alone, or is cut and repaired from
// peers in a cluster; a journal ending below the superblock's commit lost records), and judge
// whether the journal holds everything this replica ever acknowledged. The rules are in
// storage_startup.ts and storage/data_dir_rules.ts; this file only sequences them.

import { mkdir } from 'node:fs/promises';
import { clusterIdFromName } from '../core/header.js';
import { Journal } from '../storage/journal.js';
import type { Superblock } from '../storage/superblock.js';
import { DiskSpace } from './disk_space.js';
import type { NodeDependencies } from './node_deps.js';
import {
  checkJournalDir,
  judgeJournal,
  openOrFormatSuperblock,
  refusedJournal,
} from './storage_startup.js';

export interface OpenedStorage {
  readonly superblock: Superblock;
  readonly journal: Journal;
  /** Whether the data directory's disk is full: writes refused, reads served. */
  readonly disk: DiskSpace;
  /** Formatted now (no earlier incarnation ran). */
  readonly formatted: boolean;
  /** The journal holds every record this replica acknowledged (else: repair before voting). */
  readonly journalIntact: boolean;
}

export async function openNodeStorage(deps: NodeDependencies): Promise<OpenedStorage> {
  const { config, logger } = deps;
  await mkdir(config.dataDir, { recursive: true });
  const { superblock, formatted } = await openOrFormatSuperblock({
    dataDir: config.dataDir,
    clusterName: config.clusterName,
    nodeId: config.nodeId,
    replicaCount: config.peers.length,
    clientSessionCountMax: config.clientSessionCountMax,
    format: config.format === true,
    logger,
    io: deps.io,
  });
  const storageLog = logger.child({}, 'kimberlite_storage');
  const check = {
    dataDir: config.dataDir,
    superblock,
    formatted,
    alone: config.peers.length === 1,
    logger: storageLog,
    io: deps.io,
  };
  const journalDirPresent = await checkJournalDir(check);
  const disk = await DiskSpace.start({
    dataDir: config.dataDir,
    freeBytesMin: config.diskFreeBytesMin,
    logger: storageLog,
    instruments: deps.metrics.disk,
  });
  superblock.onFull = (full, error) => disk.setWaiting('superblock', full, error);
  const journal = await Journal.open({
    dir: config.dataDir,
    cluster: clusterIdFromName(config.clusterName),
    segmentSizeBytesMax: config.segmentSizeBytesMax,
    // With peers, a corrupt record is cut and fetched again from them; alone, refuse to start.
    onCorruption: config.peers.length > 1 ? 'cut' : 'refuse',
    // A journal ending below the superblock's commit lost records (storage_startup.ts).
    commitFloor: superblock.state.commit,
    onFull: (full, error) => disk.setWaiting('journal', full, error),
    onFreeSpaceError: (error) =>
      storageLog.warn('Journal stopped laying down free space; records now extend the file', {
        error: error instanceof Error ? error.message : String(error),
      }),
    ...(deps.io === undefined ? {} : { io: deps.io }),
  }).catch((error: unknown) => refusedJournal(check, error));
  deps.metrics.logFreeSpaceBytes.bind(() => journal.freeSpaceBytes);
  const journalIntact = judgeJournal({ ...check, journal, journalDirPresent });
  return { superblock, journal, disk, formatted, journalIntact };
}
