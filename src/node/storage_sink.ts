// The storage sink: performs the replica's journal and superblock effects on the real disk, and
// reports each completion back through the effect driver (journalDurable, journalRead,
// superblockDurable).
//
// Ordering (message.ts): a journal_truncate is a barrier. Journal appends and superblock writes
// issued after it start only once it is durable; work issued while no barrier stands starts at
// once, and the append's own promise becomes the barrier only while it is the latest work (so a
// later truncation waits for it). Journal reads go straight to the journal: they read committed
// records, which a truncation never touches. A failure of any write is fatal: the node stops
// without acknowledging anything more (the journal on disk stays the truth).
//
// The superblock's commit must be held by this journal (verify checks it): a lower commit only
// means a restart learns the rest from the cluster, so writes clamp the commit rather than claim.

import { checksumEqual } from '../core/checksum.js';
import { errorCodes, KmbError } from '../core/errors.js';
import type { Prepare } from '../core/header.js';
import { asOp } from '../core/types.js';
import type { Op } from '../core/types.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { Journal } from '../storage/journal.js';
import type { Superblock } from '../storage/superblock.js';
import type { StorageSink, SuperblockFields } from '../vsr/effect_driver.js';
import type { JournalReadContext } from '../vsr/message.js';
import { mark, timelineOn } from './timeline.js';

/** Where the sink reports completions: the effect driver's storage inputs. */
export interface StorageCompletions {
  journalDurable(op: Op, checksum: Uint8Array): void;
  journalRead(op: Op, prepare: Prepare | null, context: JournalReadContext): void;
  superblockDurable(): void;
}

export interface JournalSinkOptions {
  readonly journal: Journal;
  readonly superblock: Superblock;
  readonly metrics: Metrics;
  readonly logger: Logger;
  /** A failure that leaves the node unable to continue safely. */
  readonly fatal: (error: unknown) => void;
  /** Whether the node is stopping (an append abandoned on a full disk is then not fatal). */
  readonly stopping: () => boolean;
  /** Each prepare handed to the journal (the query service keeps recent ones for reads). */
  readonly onAppend: (prepare: Prepare) => void;
}

export class JournalSink implements StorageSink {
  private completions: StorageCompletions | null = null;
  /** The storage work later appends and superblock writes wait for (a truncation), or null. */
  private barrier: Promise<void> | null = null;
  /** The superblock write in flight (the replica allows one at a time), for drain(). */
  private superblockWriting: Promise<unknown> = Promise.resolve();

  constructor(private readonly options: JournalSinkOptions) {}

  /** Completions go to `completions` from now on (the driver exists only after the sink). */
  attach(completions: StorageCompletions): void {
    this.completions = completions;
  }

  append(prepare: Prepare): void {
    this.afterBarrier(() => this.startAppend(prepare));
  }

  truncate(opMax: Op): void {
    // The durable commit: the replica may execute past opMax before this effect is performed
    // (it cut and refilled its log in one step), never before it was emitted.
    const commitFloor = this.options.superblock.state.commit;
    this.afterBarrier(() => this.options.journal.truncate(opMax, { commitFloor }));
  }

  read(op: Op, checksum: Uint8Array | null, context: JournalReadContext): void {
    this.options.journal.read(op).then(
      (prepare) => {
        const matches = checksum === null || checksumEqual(prepare.header.checksum, checksum);
        this.done().journalRead(op, matches ? prepare : null, context);
      },
      (error: unknown) => {
        // A record that fails its checksums is reported as missing, for repair from a peer.
        if (!(error instanceof KmbError) || error.code !== errorCodes.storage_corrupt) {
          this.options.fatal(error);
          return;
        }
        this.options.logger.warn('Journal record failed its checksums on read', { op });
        this.done().journalRead(op, null, context);
      },
    );
  }

  writeSuperblock(fields: SuperblockFields): void {
    this.afterBarrier(() => this.startSuperblockWrite(fields));
  }

  /** Waits for every write issued so far (graceful stop). */
  async drain(): Promise<void> {
    while (this.barrier !== null) await this.barrier;
    await this.superblockWriting;
  }

  private done(): StorageCompletions {
    const completions = this.completions;
    if (completions === null) throw new Error('storage sink used before attach()');
    return completions;
  }

  private startAppend(prepare: Prepare): void {
    const { journal, metrics } = this.options;
    const { op, checksum, requestCount } = prepare.header;
    const sizeBytes = prepare.headerBytes.length + prepare.body.length;
    if (timelineOn) mark('append_start', op);
    journal.append(prepare).then(
      () => {
        if (timelineOn) mark('append_durable', op);
        metrics.logEntriesTotal.inc(requestCount);
        metrics.logBytesTotal.inc(sizeBytes);
        metrics.logSizeBytes.set(journal.sizeBytes);
        this.done().journalDurable(op, checksum);
      },
      (error: unknown) => {
        // Stopping while the disk is full: those ops were never acknowledged (journal.ts).
        const abandoned = error instanceof KmbError && error.code === errorCodes.storage_full;
        if (!(abandoned && this.options.stopping())) this.options.fatal(error);
      },
    );
    this.options.onAppend(prepare);
  }

  private startSuperblockWrite(fields: SuperblockFields): void {
    const { superblock, journal } = this.options;
    const held = Math.min(fields.commit, journal.durableOpMax);
    const commit = asOp(Math.max(superblock.state.commit, held));
    const writing = superblock.write({ ...fields, commit });
    this.superblockWriting = writing.catch(() => undefined);
    writing.then(
      () => this.done().superblockDurable(),
      (error: unknown) => this.options.fatal(error),
    );
  }

  /**
   * Runs `work` now, or after the barrier (a truncation in progress) and whatever already waits
   * for it, in order. A failure of the barrier's work is fatal.
   */
  private afterBarrier(work: () => void | Promise<void>): void {
    if (this.barrier === null) {
      const started = work();
      if (started instanceof Promise) this.setBarrier(started);
      return;
    }
    this.setBarrier(this.barrier.then(work));
  }

  private setBarrier(work: Promise<void>): void {
    const barrier = work.catch((error: unknown) => this.options.fatal(error));
    this.barrier = barrier;
    void barrier.then(() => {
      if (this.barrier === barrier) this.barrier = null;
    });
  }
}
