// Waiting for space on a full disk, for the journal and the superblock. A write, datasync or
// file creation answered ENOSPC or EDQUOT (isNoSpaceError) is not a storage failure: the caller
// keeps what it was writing, waits retryIntervalMs, and writes it again, until it succeeds.
//
// Why write again rather than only datasync again: after a failed writeback, Linux reports the
// error once and may mark the failed pages clean, so a later datasync can succeed without those
// bytes ever reaching the disk. Written again, they are dirty again, and the datasync that then
// succeeds covers them. So a retry is always "the same bytes at the same positions, then a
// datasync", never a bare datasync.
//
// Invariants: `onFull` is told once when waiting starts (true, with the error) and once when a
// write succeeds after it (false); at most one wait is in progress; cancel() ends it at once.

export interface SpaceWaitOptions {
  /** Told when writes start waiting for space (true, with the error) and when they resume. */
  readonly onFull: (full: boolean, error: unknown) => void;
  /** How long to wait before the next attempt; read at each wait. */
  readonly retryIntervalMs: () => number;
}

export class SpaceWait {
  private fullValue = false;
  private wake: (() => void) | null = null;

  constructor(private readonly options: SpaceWaitOptions) {}

  /** True from a write answered "no space" until a write succeeds again. */
  get full(): boolean {
    return this.fullValue;
  }

  /** A write was answered "no space": writes wait from now on. */
  enter(error: unknown): void {
    if (this.fullValue) return;
    this.fullValue = true;
    this.options.onFull(true, error);
  }

  /** A write succeeded; returns whether it ended a wait. */
  leave(): boolean {
    if (!this.fullValue) return false;
    this.fullValue = false;
    this.options.onFull(false, null);
    return true;
  }

  /** Resolves after the retry interval, or at once on cancel(). */
  wait(): Promise<void> {
    return new Promise((resolve) => {
      const wake = (): void => {
        clearTimeout(timer);
        this.wake = null;
        resolve();
      };
      const timer = setTimeout(wake, this.options.retryIntervalMs());
      this.wake = wake;
    });
  }

  /** Ends a wait in progress now (the owner is closing). */
  cancel(): void {
    this.wake?.();
  }
}
