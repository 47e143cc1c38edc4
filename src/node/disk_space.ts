// Whether the data directory's disk is full, for the node to refuse writes while it is, keep
// serving reads, and say so on /health/ready (503 `disk_full`) and /status. The disk is full
// when either:
//   - the free space on the data directory's filesystem (statfs: blocks available to this
//     process times the block size, what `df` calls Avail) is below the floor, [storage]
//     disk_free_bytes_min; it is measured at start-up and every diskSpaceCheckIntervalMs; or
//   - storage is waiting for space: the journal or the superblock had a write answered ENOSPC or
//     EDQUOT and is retrying it (journal_writer.ts, "A full disk").
// The floor makes the node refuse new writes before the disk is truly out of space; the second
// source covers a disk that filled faster than a measurement (or a floor of 0). Writes resume
// by themselves once both clear: no restart.
//
// A replica whose journal waits for space also stops taking new prepares from the leader beyond
// diskFullJournalPendingCountMax queued (dropsReplicaMessage), as if the network lost them: VSR
// tolerates loss and repairs the gap once space returns, and the journal's append queue stays
// far below its assertion bound (journalAppendQueueCountMax).
//
// Logs (target kmb_storage): one ERROR when the disk becomes full, one INFO when writes resume,
// a rate-limited WARN while prepares are dropped. Metrics: disk_metrics.ts.
//
// Invariants: at most one statfs is in flight; a failed statfs changes nothing (it is logged,
// rate-limited); the timer never keeps the process alive; `full` changes only through update().

import { statfs } from 'node:fs/promises';
import { constants } from '../core/constants.js';
import { kmbError } from '../core/errors.js';
import type { KmbError } from '../core/errors.js';
import { replicaMessageTag } from '../net/replica_codec.js';
import type { Logger } from '../observability/logger.js';
import type { DiskInstruments } from '../observability/disk_metrics.js';

/** How often a failing statfs, or dropped prepares, may be logged. */
const diskSpaceLogIntervalMs = 10_000;

/** Free bytes for this process on the filesystem holding `dir`. */
export async function freeBytesOf(dir: string): Promise<number> {
  const stats = await statfs(dir);
  return stats.bavail * stats.bsize;
}

/** What storage waits for space: the journal's appends or a superblock write. */
export type WaitingStorage = 'journal' | 'superblock';

export interface DiskSpaceOptions {
  readonly dataDir: string;
  /**
   * Below this many free bytes, writes are refused; 0 relies on ENOSPC alone. Default:
   * constants.diskFreeBytesMinDefault.
   */
  readonly freeBytesMin?: number | undefined;
  /** Target kmb_storage. */
  readonly logger: Logger;
  readonly instruments: DiskInstruments;
  /** Measures free bytes; tests pass their own. */
  readonly freeBytes?: (dir: string) => Promise<number>;
  readonly checkIntervalMs?: number;
}

export class DiskSpace {
  private freeBytesValue: number | null = null;
  private readonly waiting = new Set<WaitingStorage>();
  private fullValue = false;
  private checking: Promise<void> | null = null;
  private timer: NodeJS.Timeout | null = null;

  private readonly floorBytes: number;

  constructor(private readonly options: DiskSpaceOptions) {
    this.floorBytes = options.freeBytesMin ?? constants.diskFreeBytesMinDefault;
  }

  /**
   * Measures once (a node started on a full disk must not report ready for writes), then every
   * checkIntervalMs until stop().
   */
  static async start(options: DiskSpaceOptions): Promise<DiskSpace> {
    const disk = new DiskSpace(options);
    await disk.check();
    disk.startTimer();
    return disk;
  }

  /** True while writes are refused (see the file comment). */
  get full(): boolean {
    return this.fullValue;
  }

  /** The last measured free bytes, or null before the first measurement (or if it failed). */
  get freeBytes(): number | null {
    return this.freeBytesValue;
  }

  get freeBytesMin(): number {
    return this.floorBytes;
  }

  /** Measures the free space now (once at a time) and updates `full`. */
  check(): Promise<void> {
    this.checking ??= this.measure().finally(() => {
      this.checking = null;
    });
    return this.checking;
  }

  /** Measures every checkIntervalMs until stop(). */
  private startTimer(): void {
    if (this.timer !== null) return;
    const intervalMs = this.options.checkIntervalMs ?? constants.diskSpaceCheckIntervalMs;
    this.timer = setInterval(() => void this.check(), intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  /** Storage tells whether it waits for space (a write answered ENOSPC or EDQUOT). */
  setWaiting(storage: WaitingStorage, waiting: boolean, error?: unknown): void {
    if (waiting) this.waiting.add(storage);
    else this.waiting.delete(storage);
    this.update(waiting ? `${storage} write: ${messageOf(error)}` : null);
  }

  /** The error a refused write is answered with. */
  refusal(): KmbError {
    const free = this.freeBytesValue === null ? 'unknown' : `${this.freeBytesValue} bytes`;
    return kmbError(
      'storage_full',
      `the disk of the data directory is full (free: ${free}, floor: ` +
        `${this.floorBytes} bytes); writes are refused until space returns, reads ` +
        'are served',
    );
  }

  /**
   * Whether to drop an incoming replica message (by its tag) because it carries a prepare the
   * journal, waiting for space with `pendingCount` appends queued, has no room for.
   */
  dropsReplicaMessage(tag: number, pendingCount: number): boolean {
    if (!this.waiting.has('journal')) return false;
    if (tag !== replicaMessageTag.prepare && tag !== replicaMessageTag.repair_prepare) return false;
    if (pendingCount < constants.diskFullJournalPendingCountMax) return false;
    this.options.instruments.droppedMessagesTotal.inc();
    this.options.logger.warnRateLimited(
      'disk-full-drop',
      diskSpaceLogIntervalMs,
      'Disk full: dropping prepares from the leader until space returns',
      { pending: pendingCount, bound: constants.diskFullJournalPendingCountMax },
    );
    return true;
  }

  private async measure(): Promise<void> {
    const measureFreeBytes = this.options.freeBytes ?? freeBytesOf;
    try {
      this.freeBytesValue = await measureFreeBytes(this.options.dataDir);
    } catch (error) {
      this.options.logger.warnRateLimited(
        'disk-space-statfs',
        diskSpaceLogIntervalMs,
        'Could not measure free disk space',
        { data_dir: this.options.dataDir, error: messageOf(error) },
      );
      return;
    }
    this.options.instruments.diskFreeBytes.set(this.freeBytesValue);
    this.update(null);
  }

  /** Recomputes `full`; logs and sets the gauge when it changes. */
  private update(cause: string | null): void {
    const free = this.freeBytesValue;
    const belowFloor = free !== null && free < this.floorBytes;
    const full = belowFloor || this.waiting.size > 0;
    if (full === this.fullValue) return;
    this.fullValue = full;
    this.options.instruments.diskFull.set(full ? 1 : 0);
    const fields = {
      free_bytes: free,
      floor_bytes: this.floorBytes,
      data_dir: this.options.dataDir,
    };
    if (full) {
      const reason = belowFloor ? 'free space below the floor' : cause;
      this.options.logger.error('Disk full: writes refused until space returns', {
        ...fields,
        reason,
      });
    } else {
      this.options.logger.info('Disk space returned: writes resume', fields);
    }
  }
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
