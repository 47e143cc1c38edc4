// The timer that drives one push exporter (OTLP metrics, StatsD): every interval it asks the
// exporter for one export, never more than one at a time, and on stop it makes one final export
// bounded by a timeout, then closes the exporter.
//
// Invariants: the timer is unref'd (it never keeps the process alive); a tick that finds the
// previous export still running is skipped and counted as a failure, so a slow or dead endpoint
// can never pile up work or memory; an export that throws or reports failure is counted through
// `onFailure` and logged rate-limited (one line per minute per exporter, with how many were held
// back); nothing here runs on a request path.

import { assert } from '../core/assert.js';
import type { Logger } from './logger.js';

/** One push exporter, as the loop drives it. */
export interface PushExporter {
  /** 'otlp' or 'statsd': the `exporter` label of failures and the log key. */
  readonly name: string;
  /** One export of the current values; rejects when it did not reach its endpoint. */
  exportOnce(): Promise<void>;
  /** Releases sockets and agents; called once, after the final export. */
  close(): Promise<void>;
}

export interface ExportLoopOptions {
  readonly exporter: PushExporter;
  readonly intervalMs: number;
  readonly logger: Logger;
  /** Counts one failed or skipped export (e.g. kmb_telemetry_export_errors_total). */
  readonly onFailure: (exporter: string) => void;
  /** Upper bound on stop(): the final export plus closing (default 2000 ms). */
  readonly stopTimeoutMs?: number;
}

/** A failed export is logged at most once per this interval per exporter. */
export const exportFailureLogIntervalMs = 60_000;
const stopTimeoutMsDefault = 2000;

/** Resolves when `work` settles or after `timeoutMs`, whichever is first; never rejects. */
export async function settleWithin(work: Promise<unknown>, timeoutMs: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), timeoutMs);
    timer.unref();
  });
  const settled = work.then(
    () => true,
    () => true,
  );
  try {
    return await Promise.race([settled, expired]);
  } finally {
    clearTimeout(timer);
  }
}

export class ExportLoop {
  /** Exports that completed. */
  exportCount = 0;
  /** Exports that failed or were skipped because the previous one was still running. */
  failureCount = 0;
  private timer: NodeJS.Timeout | null = null;
  private inFlight: Promise<void> | null = null;
  private stopped = false;

  constructor(private readonly options: ExportLoopOptions) {
    assert(Number.isFinite(options.intervalMs) && options.intervalMs > 0, 'interval must be > 0');
  }

  start(): void {
    assert(this.timer === null && !this.stopped, 'an export loop starts once');
    this.timer = setInterval(() => this.tick(), this.options.intervalMs);
    this.timer.unref();
  }

  /** Runs one export now unless one is running; resolves when it has finished. */
  tick(): Promise<void> {
    if (this.inFlight !== null) {
      this.fail(new Error('the previous export is still running; this interval is skipped'));
      return this.inFlight;
    }
    const run = this.options.exporter
      .exportOnce()
      .then(
        () => {
          this.exportCount += 1;
        },
        (error: unknown) => this.fail(error),
      )
      .finally(() => {
        this.inFlight = null;
      });
    this.inFlight = run;
    return run;
  }

  /** Stops the timer, makes a final export and closes the exporter, within the stop timeout. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    const final = async (): Promise<void> => {
      if (this.inFlight !== null) await this.inFlight;
      await this.tick();
      await this.options.exporter.close();
    };
    const finished = await settleWithin(
      final(),
      this.options.stopTimeoutMs ?? stopTimeoutMsDefault,
    );
    if (!finished) {
      this.options.logger.warn('Telemetry exporter did not finish its final export in time', {
        exporter: this.options.exporter.name,
        timeout_ms: this.options.stopTimeoutMs ?? stopTimeoutMsDefault,
      });
    }
  }

  private fail(error: unknown): void {
    this.failureCount += 1;
    const name = this.options.exporter.name;
    this.options.onFailure(name);
    this.options.logger.warnRateLimited(
      `telemetry_export_${name}`,
      exportFailureLogIntervalMs,
      'Telemetry export failed',
      { exporter: name, error: error instanceof Error ? error.message : String(error) },
    );
  }
}
