// A bounded history of the view changes this node took part in, for operators
// (`kimberlite-cli cluster view-changes`): when each started and finished, from which view to
// which, why, and who became leader. Oldest entries are dropped past the bound.

import { assert } from '../core/assert.js';

export const viewChangeHistoryCountMax = 256;

export interface ViewChangeRecord {
  readonly started_at: string;
  finished_at: string | null;
  readonly old_view: number;
  view: number;
  readonly reason: string;
  leader: number | null;
  duration_ms: number | null;
}

export class ViewChangeHistory {
  private readonly records: ViewChangeRecord[] = [];
  private readonly startedMs: number[] = [];

  constructor(private readonly nowMs: () => number = Date.now) {}

  started(oldView: number, view: number, reason: string): void {
    const now = this.nowMs();
    this.records.push({
      started_at: new Date(now).toISOString(),
      finished_at: null,
      old_view: oldView,
      view,
      reason,
      leader: null,
      duration_ms: null,
    });
    this.startedMs.push(now);
    if (this.records.length > viewChangeHistoryCountMax) {
      this.records.shift();
      this.startedMs.shift();
    }
    assert(this.records.length === this.startedMs.length, 'parallel arrays');
  }

  /** Completes the latest unfinished change (or records one this node only learned of). */
  finished(oldView: number, view: number, leader: number): void {
    const now = this.nowMs();
    const last = this.records.length - 1;
    const open = this.records[last];
    if (open === undefined || open.finished_at !== null) {
      this.started(oldView, view, 'learned');
      this.finished(oldView, view, leader);
      return;
    }
    open.finished_at = new Date(now).toISOString();
    open.view = view;
    open.leader = leader;
    open.duration_ms = now - (this.startedMs[last] ?? now);
  }

  /** Records since `sinceMs` (epoch ms), oldest first. */
  list(sinceMs = 0): ViewChangeRecord[] {
    return this.records
      .filter((_, i) => (this.startedMs[i] ?? 0) >= sinceMs)
      .map((r) => ({ ...r }));
  }
}
